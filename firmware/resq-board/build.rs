//! Builds in every board profile of `boards/` and the unit template `boards/resq-fw.service`,
//! so a new board is one new file there and no edit anywhere else.
//!
//! The files are embedded at build time (`include_str!` of generated code in OUT_DIR): an
//! installed `resq` or `resq-fw` needs no checkout. `boards/` is the workspace's folder; this
//! crate sees it through its `boards` link (a packaged crate carries the files themselves
//! there), else at `../../boards`.

use std::path::{Path, PathBuf};

/// Listing order (`resq-fw boards`, "use one of …"): these first, in this order; any other
/// profile after them by file name; the catch-all profiles (`generic-*`, `*-host`) last.
const FIRST: &[&str] = &["rpi4", "rpi5", "jetson-nano", "jetson-orin-nano"];

fn rank(name: &str) -> (u8, usize, String) {
    if let Some(i) = FIRST.iter().position(|f| *f == name) {
        (0, i, String::new())
    } else if name.starts_with("generic-") || name.ends_with("-host") {
        (2, 0, name.to_string())
    } else {
        (1, 0, name.to_string())
    }
}

fn boards_dir(manifest: &Path) -> PathBuf {
    let candidates = [manifest.join("boards"), manifest.join("../../boards")];
    for c in &candidates {
        if c.join("resq-fw.service").is_file() {
            return c.canonicalize().unwrap_or_else(|_| c.clone());
        }
    }
    panic!(
        "resq-board: no board profiles: neither {} nor {} holds resq-fw.service and the \
         boards' *.toml files (build from the resq checkout, or package the crate with them)",
        candidates[0].display(),
        candidates[1].display()
    );
}

fn main() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let boards = boards_dir(&manifest);
    println!("cargo:rerun-if-changed={}", boards.display());
    let mut names: Vec<String> = std::fs::read_dir(&boards)
        .unwrap_or_else(|e| panic!("resq-board: cannot read {}: {e}", boards.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".toml").map(str::to_string))
        .collect();
    names.sort_by_key(|n| rank(n));
    let mut out = String::from(
        "/// The shipped board profiles (`boards/*.toml`): (name, text), in listing order.\n\
         pub const BUILTIN: &[(&str, &str)] = &[\n",
    );
    for n in &names {
        let path = boards.join(format!("{n}.toml"));
        println!("cargo:rerun-if-changed={}", path.display());
        out += &format!(
            "    ({n:?}, include_str!({:?})),\n",
            path.display().to_string()
        );
    }
    out += "];\n";
    let unit = boards.join("resq-fw.service");
    println!("cargo:rerun-if-changed={}", unit.display());
    out += &format!(
        "/// The systemd unit template (`boards/resq-fw.service`); [`Profile::unit`] fills it in.\n\
         pub const UNIT_TEMPLATE: &str = include_str!({:?});\n",
        unit.display().to_string()
    );
    let dest = Path::new(&std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("builtin.rs");
    std::fs::write(dest, out).expect("write builtin.rs");
}
