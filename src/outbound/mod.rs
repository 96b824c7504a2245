//! The outbound side: which notifications a change causes and how they are
//! queued (enqueue), rendered (render), composed (compose) and delivered
//! (deliver, over a transport) by the daemon's worker (worker).

pub mod compose;
pub mod deliver;
pub mod enqueue;
pub mod render;
pub mod transport;
pub mod worker;
