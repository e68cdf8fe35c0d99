//! Builds in every board profile of `boards/` (the same files `resq-fw` builds in), so a new
//! profile needs no edit here.

use std::path::Path;

fn main() {
    let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards");
    println!("cargo:rerun-if-changed={}", boards.display());
    let mut names: Vec<String> = std::fs::read_dir(&boards)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".toml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from("/// The shipped board profiles (`boards/*.toml`), by name.\npub const BUILTIN: &[(&str, &str)] = &[\n");
    for n in &names {
        let path = boards.join(n);
        println!("cargo:rerun-if-changed={}", path.display());
        out += &format!(
            "    ({:?}, include_str!({:?})),\n",
            n.trim_end_matches(".toml"),
            path.display().to_string()
        );
    }
    out += "];\n";
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("boards.rs");
    std::fs::write(dest, out).expect("write boards.rs");
}
