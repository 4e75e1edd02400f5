//! Trading an identity token (an OAuth2 refresh token, as `docker login` stores for some
//! registries) for a registry access token: ask the registry for its Bearer challenge, then
//! POST `grant_type=refresh_token` to the challenge's realm.

use serde::Deserialize;

use crate::error::{Error, Result};

/// The parameters of a `WWW-Authenticate: Bearer ...` challenge.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Challenge {
    /// The token endpoint.
    pub realm: String,
    /// The service the token is for.
    pub service: String,
}

/// Parses `Bearer realm="...",service="..."`; None for other schemes.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut challenge = Challenge::default();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(',').map_or((after, ""), |(v, a)| (v, a)),
        };
        match key.trim() {
            "realm" => challenge.realm = value.to_string(),
            "service" => challenge.service = value.to_string(),
            _ => {}
        }
        rest = after.trim_start_matches([',', ' ']);
    }
    (!challenge.realm.is_empty()).then_some(challenge)
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    token: Option<String>,
}

/// Exchanges `refresh_token` for an access token to pull `repository` from `host`.
pub async fn exchange(
    plain_http: bool,
    host: &str,
    repository: &str,
    refresh_token: &str,
) -> Result<String> {
    let unavailable =
        |e: reqwest::Error| Error::Unavailable(format!("registry {host} is unreachable: {e}"));
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
    let scheme = if plain_http { "http" } else { "https" };
    let probe = client
        .get(format!("{scheme}://{host}/v2/"))
        .send()
        .await
        .map_err(unavailable)?;
    let challenge = probe
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_challenge)
        .ok_or_else(|| {
            Error::Unauthenticated(format!(
                "registry {host} does not use token authentication, so an identity token cannot be used with it"
            ))
        })?;
    let body = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("service", challenge.service.as_str()),
        ("scope", &format!("repository:{repository}:pull")),
        ("client_id", "crishim"),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", form_encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let response = client
        .post(&challenge.realm)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(unavailable)?;
    if !response.status().is_success() {
        return Err(Error::Unauthenticated(format!(
            "the token service of registry {host} refused the identity token: {}",
            response.status()
        )));
    }
    let bytes = response.bytes().await.map_err(unavailable)?;
    let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Unauthenticated(format!(
            "the token service of registry {host} answered badly: {e}"
        ))
    })?;
    token.access_token.or(token.token).ok_or_else(|| {
        Error::Unauthenticated(format!(
            "the token service of registry {host} returned no token"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="a:b:pull""#).unwrap();
        assert_eq!(c.realm, "https://auth.example/token");
        assert_eq!(c.service, "registry.example");
        let c = parse_challenge("bearer realm=http://x/token, service=svc").unwrap();
        assert_eq!(
            (c.realm.as_str(), c.service.as_str()),
            ("http://x/token", "svc")
        );
        assert_eq!(parse_challenge(r#"Basic realm="x""#), None);
        assert_eq!(parse_challenge("Bearer service=\"x\""), None);
    }

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(
            form_encode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
        assert_eq!(form_encode("a b+c"), "a+b%2Bc");
    }
}
