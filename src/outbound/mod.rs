//! The outbound side: which notifications a change causes and how they are
//! queued (enqueue).

pub mod compose;
pub mod deliver;
pub mod enqueue;
pub mod render;
pub mod transport;
