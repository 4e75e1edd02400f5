//! SPDY/3 header blocks: name/value pairs with 32-bit counts and lengths, zlib-compressed
//! against the SPDY/3 dictionary. Each direction of a connection keeps one compression context
//! for all its header blocks and sync-flushes after each block, so the two sides must see the
//! blocks in wire order.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::SpdyError;

/// The zlib dictionary of SPDY/3 header compression (draft 3, section 2.6.10.1).
#[rustfmt::skip]
const DICTIONARY: &[u8; 1423] = b"\
    \0\0\0\x07options\0\0\0\x04head\0\0\0\x04post\0\0\0\x03put\0\0\0\x06delete\0\0\0\x05tr\
    ace\0\0\0\x06accept\0\0\0\x0eaccept-charset\0\0\0\x0faccept-encoding\0\0\0\x0faccept-l\
    anguage\0\0\0\x0daccept-ranges\0\0\0\x03age\0\0\0\x05allow\0\0\0\x0dauthorization\0\0\
    \0\x0dcache-control\0\0\0\x0aconnection\0\0\0\x0ccontent-base\0\0\0\x10content-encodin\
    g\0\0\0\x10content-language\0\0\0\x0econtent-length\0\0\0\x10content-location\0\0\0\
    \x0bcontent-md5\0\0\0\x0dcontent-range\0\0\0\x0ccontent-type\0\0\0\x04date\0\0\0\x04et\
    ag\0\0\0\x06expect\0\0\0\x07expires\0\0\0\x04from\0\0\0\x04host\0\0\0\x08if-match\0\0\
    \0\x11if-modified-since\0\0\0\x0dif-none-match\0\0\0\x08if-range\0\0\0\x13if-unmodifie\
    d-since\0\0\0\x0dlast-modified\0\0\0\x08location\0\0\0\x0cmax-forwards\0\0\0\x06pragma\
    \0\0\0\x12proxy-authenticate\0\0\0\x13proxy-authorization\0\0\0\x05range\0\0\0\x07refe\
    rer\0\0\0\x0bretry-after\0\0\0\x06server\0\0\0\x02te\0\0\0\x07trailer\0\0\0\x11transfe\
    r-encoding\0\0\0\x07upgrade\0\0\0\x0auser-agent\0\0\0\x04vary\0\0\0\x03via\0\0\0\x07wa\
    rning\0\0\0\x10www-authenticate\0\0\0\x06method\0\0\0\x03get\0\0\0\x06status\0\0\0\x06\
    200 OK\0\0\0\x07version\0\0\0\x08HTTP/1.1\0\0\0\x03url\0\0\0\x06public\0\0\0\x0aset-co\
    okie\0\0\0\x0akeep-alive\0\0\0\x06origin1001012012022052063003023033043053063074024054\
    06407408409410411412413414415416417502504505203 Non-Authoritative Information204 No Co\
    ntent301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500\
    \x20Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May\
    \x20Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunke\
    d,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/p\
    lain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-88\
    59-1,utf-,*,enq=0.";

/// The most a header block may inflate to; Kubernetes streams carry a few short headers.
const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// A header block's name/value pairs in wire order. Names are lowercase; a value naming several
/// values keeps the NUL bytes that separate them.
pub(super) type Headers = Vec<(String, String)>;

/// The first value of header `name` (lowercase), as Go's `http.Header.Get` reads it.
pub(super) fn header_value<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| value.split('\0').next())
}

/// The compression context for the header blocks one side sends.
pub(super) struct HeaderCompressor(Compress);

impl HeaderCompressor {
    /// A context primed with the SPDY/3 dictionary.
    pub(super) fn new() -> Result<Self, SpdyError> {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(DICTIONARY)
            .map_err(|error| SpdyError::Compression(error.to_string()))?;
        Ok(Self(deflate))
    }

    /// Serializes and compresses `headers`, ending with a sync flush.
    pub(super) fn compress(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let plain = serialize(headers)?;
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut consumed = 0;
        loop {
            let before = self.0.total_in();
            self.0
                .compress_vec(&plain[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|error| SpdyError::Compression(error.to_string()))?;
            consumed += progress(before, self.0.total_in());
            if consumed == plain.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(256);
        }
    }
}

/// The decompression context for the header blocks the other side sends.
pub(super) struct HeaderDecompressor(Decompress);

impl HeaderDecompressor {
    /// A fresh context; the dictionary is supplied when the zlib header asks for it.
    pub(super) fn new() -> Self {
        Self(Decompress::new(true))
    }

    /// Inflates and parses one header block.
    pub(super) fn decompress(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        parse(&self.inflate(block)?)
    }

    fn inflate(&mut self, block: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let mut consumed = 0;
        loop {
            let (before_in, before_out) = (self.0.total_in(), out.len());
            let status = self
                .0
                .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync);
            let consumed_now = progress(before_in, self.0.total_in());
            consumed += consumed_now;
            match status {
                Ok(Status::StreamEnd) => return Err(SpdyError::Malformed("header stream ended")),
                Ok(_) => {}
                Err(error) if error.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(DICTIONARY)
                        .map_err(|error| SpdyError::Compression(error.to_string()))?;
                    continue;
                }
                Err(error) => return Err(SpdyError::Compression(error.to_string())),
            }
            let room_left = out.len() < out.capacity();
            if consumed == block.len() && room_left {
                return Ok(out);
            }
            if room_left && consumed_now == 0 && out.len() == before_out {
                return Err(SpdyError::Malformed("header block makes no progress"));
            }
            if out.len() >= MAX_HEADER_BLOCK {
                return Err(SpdyError::Malformed("header block too large"));
            }
            out.reserve(out.len().max(256));
        }
    }
}

/// How far a zlib counter moved during one call.
fn progress(before: u64, after: u64) -> usize {
    usize::try_from(after - before).unwrap_or(usize::MAX)
}

fn serialize(headers: &Headers) -> Result<Vec<u8>, SpdyError> {
    let mut out = Vec::new();
    put_length(&mut out, headers.len())?;
    for (name, value) in headers {
        put_length(&mut out, name.len())?;
        out.extend_from_slice(name.to_ascii_lowercase().as_bytes());
        put_length(&mut out, value.len())?;
        out.extend_from_slice(value.as_bytes());
    }
    Ok(out)
}

fn put_length(out: &mut Vec<u8>, length: usize) -> Result<(), SpdyError> {
    let length = u32::try_from(length).map_err(|_| SpdyError::Malformed("header too long"))?;
    out.extend_from_slice(&length.to_be_bytes());
    Ok(())
}

fn parse(mut block: &[u8]) -> Result<Headers, SpdyError> {
    let count = take_length(&mut block)?;
    // Each pair takes at least 8 bytes, which bounds what a hostile count can allocate.
    let mut headers = Vec::with_capacity(count.min(block.len() / 8));
    for _ in 0..count {
        let name = take_string(&mut block)?.to_ascii_lowercase();
        let value = take_string(&mut block)?;
        headers.push((name, value));
    }
    Ok(headers)
}

fn take_length(block: &mut &[u8]) -> Result<usize, SpdyError> {
    let (length, rest) = block
        .split_first_chunk::<4>()
        .ok_or(SpdyError::Malformed("truncated header block"))?;
    *block = rest;
    usize::try_from(u32::from_be_bytes(*length))
        .map_err(|_| SpdyError::Malformed("header too long"))
}

fn take_string(block: &mut &[u8]) -> Result<String, SpdyError> {
    let length = take_length(block)?;
    if length > block.len() {
        return Err(SpdyError::Malformed("truncated header block"));
    }
    let (text, rest) = block.split_at(length);
    *block = rest;
    Ok(String::from_utf8_lossy(text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn dictionary_is_the_spdy3_one() {
        // zlib names a dictionary by its Adler-32; spdystream's (and Chromium's) is 0xe3c6a7c2.
        let (mut a, mut b) = (1u32, 0u32);
        for byte in DICTIONARY {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_through_one_context_per_direction() {
        let mut compressor = HeaderCompressor::new().unwrap();
        let mut decompressor = HeaderDecompressor::new();
        let blocks = [
            headers(&[("streamtype", "error"), ("port", "8080")]),
            headers(&[]),
            headers(&[("streamtype", "data"), ("requestid", "0"), ("port", "8080")]),
        ];
        for block in &blocks {
            let compressed = compressor.compress(block).unwrap();
            // A sync flush ends every block with an empty stored block.
            assert!(compressed.ends_with(&[0, 0, 0xff, 0xff]));
            assert_eq!(&decompressor.decompress(&compressed).unwrap(), block);
        }
    }

    #[test]
    fn the_first_block_names_the_dictionary() {
        let compressed = HeaderCompressor::new()
            .unwrap()
            .compress(&headers(&[("streamtype", "stdin")]))
            .unwrap();
        // zlib header with FDICT set, then the dictionary id.
        assert_eq!(compressed[1] & 0x20, 0x20);
        assert_eq!(compressed[2..6], [0xe3, 0xc6, 0xa7, 0xc2]);
    }

    #[test]
    fn names_are_lowercased_and_first_values_read() {
        let mut compressor = HeaderCompressor::new().unwrap();
        let compressed = compressor
            .compress(&headers(&[("streamType", "stdout\0stderr")]))
            .unwrap();
        let parsed = HeaderDecompressor::new().decompress(&compressed).unwrap();
        assert_eq!(header_value(&parsed, "streamtype"), Some("stdout"));
        assert_eq!(header_value(&parsed, "port"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut decompressor = HeaderDecompressor::new();
        assert!(
            decompressor
                .decompress(&[0x78, 0xbb, 1, 2, 3, 4, 5])
                .is_err()
        );
        let plain_block = [0, 0, 0, 5, 0, 0, 0, 200];
        assert!(parse(&plain_block).is_err());
    }
}
