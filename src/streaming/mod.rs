//! The streaming server kubelet sends exec, attach and port-forward clients to: Exec, Attach
//! and PortForward answer a one-time URL on it, and the client upgrades that HTTP request to
//! SPDY/3.1 or WebSocket, carrying the `channel.k8s.io` / `portforward.k8s.io` protocols.

pub mod channels;
pub mod spdy;
pub mod websocket;
