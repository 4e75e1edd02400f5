//! WebSocket (being written).
