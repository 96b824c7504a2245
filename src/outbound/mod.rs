//! The outbound side: notifications, queued by the decisions that cause
//! them, rendered (render), composed (compose) and delivered (deliver, over
//! a transport) by the daemon's worker (worker) or `outbox flush`.

pub mod compose;
pub mod deliver;
pub mod render;
pub mod transport;
pub mod worker;
