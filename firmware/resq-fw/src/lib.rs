//! resq on the board: frames from a camera (V4L2, GStreamer) or a folder, fused preprocessing
//! straight into the model's int8 input, the firmware engine, and results on stdout (human or
//! JSON lines) and GPIO lines — offline, for Raspberry Pi and Jetson boards.
//!
//! Layers, bottom up: [`frame`] (owned frame buffers) → [`source`] (frame sources behind one
//! trait, chosen by URI) → [`classify`] (preprocessing + engine + top-k) → [`smooth`],
//! [`gpio`] (indicators over embedded-hal `OutputPin`) → [`service`] (capture thread,
//! newest-frame hand-off, workers, reporting) → the `resq-fw` binary. [`board`] holds the board
//! profiles.
#![warn(missing_docs)]

pub mod board;
pub mod classify;
pub mod frame;
pub mod gpio;
pub mod model;
pub mod report;
pub mod service;
pub mod smooth;
pub mod source;
