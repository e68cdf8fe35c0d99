//! `resq-deploy`: put resq on Linux boards (Cortex-A, Jetson) so that it survives a power cut
//! at any moment and never leaves the board without a working classifier.
//!
//! - [`Bundle`]: firmware + model + board profile + systemd unit + a manifest of SHA-256 sums
//!   and versions; written alone as a tar file for offline transport.
//! - [`Target`]: `ssh://user@host[:port][/prefix]` (a live board, through the system OpenSSH
//!   client with verified host keys) or `dir:/mnt/rootfs` (a mounted card or image).
//! - [`flash`]: the atomic A/B install (see [`install`] for the steps), self-test on the
//!   device, automatic switch back on failure; [`rollback`] and [`status`].
//! - [`flash_fleet`]: many devices in parallel with a bounded number of connections.
//! - [`measure`]: benchmark or accuracy check on a live board (`resq device`).
//!
//! Progress is reported through the [`Progress`] trait (no-op by default); the `resq` CLI
//! draws it with indicatif.
//!
//! Modules, bottom up, each importing only from those before it (this file only declares
//! them and re-exports): `error`; `fault` (kill points for the interruption tests);
//! [`progress`]; [`uri`]; [`board`] (profiles, on the `resq-board` crate); [`bundle`];
//! `target` (the `Device` trait of the install protocol, with `target/local.rs` for `dir:`
//! and `target/ssh.rs` for `ssh://`); [`install`] (the protocol over a `Device`); [`fleet`];
//! [`measure`].

#![warn(missing_docs)]

pub mod board;
pub mod bundle;
mod error;
mod fault;
pub mod fleet;
pub mod install;
pub mod measure;
pub mod progress;
mod target;
pub mod uri;

pub use board::Board;
pub use bundle::{find_firmware, Bundle, BundleSpec, Manifest};
pub use error::{Error, ErrorKind, Result};
pub use fleet::{flash_fleet, for_each};
pub use install::{flash, rollback, status, FlashOptions, FlashReport, RollbackReport};
pub use progress::{NoProgress, Progress, Step};
pub use target::ssh::SshOptions;
pub use target::{Release, SelfTest, State};
pub use uri::{read_inventory, Target};
