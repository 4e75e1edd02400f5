//! The streaming server kubelet sends exec, attach and port-forward clients to: Exec, Attach
//! and PortForward answer a one-time URL on it (`session`), and the client upgrades that HTTP
//! request (`http`) to SPDY/3.1 (`spdy`) or WebSocket (`websocket`), which carry the
//! `channel.k8s.io` / `portforward.k8s.io` protocols as `channels`. The sessions themselves
//! (`attach`, `exec`, `portforward`) only see channels.

pub mod attach;
pub mod channels;
pub mod exec;
pub mod http;
pub mod portforward;
pub mod session;
pub mod spdy;
pub mod websocket;
