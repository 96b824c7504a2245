//! The outbound side: which notifications a change causes and how they are
//! queued (enqueue).

pub mod enqueue;
