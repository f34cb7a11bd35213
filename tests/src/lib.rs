//! The virtionet test harness: it plays NetAdapterCx and the device so that the driver core can be
//! checked on Linux.
//!
//! So far it holds the OS side of queue creation: [`rings::QueueRings`] allocates a queue's packet
//! and fragment rings with the extensions a driver registers, laid out as the framework does but
//! with randomised padding and strides, and answers extension queries as
//! `NetTx/RxQueueGetExtension` do.

#![deny(missing_docs)]

pub mod rings;
pub mod rng;
