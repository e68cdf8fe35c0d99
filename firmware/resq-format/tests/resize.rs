//! The resize block of format version 3: both modes survive writing and parsing, the default
//! recipe is the input's own size, and version 1 and 2 files (no block) still read with the
//! recipe they were made for (shorter side to the input, centre crop). Each way the block is
//! refused is in `rejections.rs`.
#![cfg(feature = "alloc")]

mod common;

use common::*;
use resq_format::write::{write_file, Blocks};
use resq_format::*;

fn parsed(file: &[u8]) -> Resize {
    let words = aligned(file);
    let model = Model::parse(view(&words, file.len())).expect("valid file");
    model.resize
}

#[test]
fn both_modes_round_trip() {
    for resize in [
        Resize {
            mode: ResizeMode::Shorter,
            size: [5, 5],
        },
        Resize {
            mode: ResizeMode::Squash,
            size: [4, 4],
        },
        Resize {
            mode: ResizeMode::Squash,
            size: [9, 6],
        },
        Resize {
            mode: ResizeMode::Shorter,
            size: [4, MAX_IMAGE_DIM],
        },
    ] {
        assert_eq!(parsed(&build_with_resize(resize)), resize);
    }
}

#[test]
fn the_default_recipe_is_the_shorter_side_to_the_input() {
    assert_eq!(parsed(&tiny_model()), Resize::shorter_side(4, 4));
    // Stored explicitly: the same bytes as asking for it.
    assert_eq!(build_with_resize(Resize::shorter_side(4, 4)), tiny_model());
}

#[test]
fn the_recipe_is_width_then_height() {
    // A 4 (wide) × 2 (high) input: [3, 2] is narrower than the input, [4, 3] fits.
    let (mut meta, mut data) = tiny_parts();
    meta.tensors[T_INPUT as usize].shape = [1, 2, 4, 3];
    meta.tensors[T_CONV1 as usize].shape = [1, 2, 4, 8];
    meta.tensors[T_POOL as usize].shape = [1, 1, 2, 8];
    // The avg pool then sees a 1×2 map: window 1×2, multipliers for 1 and 2 cells.
    let mults = data.push_i32(&[1 << 20, 1 << 19]);
    let gap = avgpool(&mut meta, L_AVGPOOL);
    gap.window.kernel = [1, 2];
    gap.mults = mults;
    let st = data.push_i8(&[0; 24]);
    meta.self_test.input = st;
    let file = |size| {
        let blocks = Blocks {
            precision: Precision::default(),
            resize: Some(Resize {
                mode: ResizeMode::Squash,
                size,
            }),
        };
        write_file(&meta, &blocks, &data).unwrap()
    };
    assert_eq!(parsed(&file([4, 3])).size, [4, 3]);
    let e = parse_err(&file([3, 4]));
    assert!(
        matches!(e, FormatError::BadResize { input: [4, 2], .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("3×4"), "{e}");
    assert!(e.to_string().contains("4×2"), "{e}");
    // The default for this input is [width, height] = [4, 2].
    let default = write_file(&meta, &Blocks::default(), &data).unwrap();
    assert_eq!(parsed(&default), Resize::shorter_side(4, 2));
}

/// The tiny model as an older version wrote it: the metadata, the int16 block from version 2
/// on, no resize block.
fn old_file(version: u16) -> Vec<u8> {
    let (meta, _) = tiny_parts();
    let mut meta_bytes = postcard::to_allocvec(&meta).unwrap();
    if version >= 2 {
        meta_bytes.extend(postcard::to_allocvec(&Precision::default()).unwrap());
    }
    let mut file = assemble(&meta_bytes, data_section(&tiny_model()));
    set_u16(&mut file, field::VERSION, version);
    recrc(&mut file);
    file
}

#[test]
fn version_1_and_2_files_read_with_the_shorter_side_recipe() {
    for version in [1, 2] {
        let file = old_file(version);
        let words = aligned(&file);
        let model = Model::parse(view(&words, file.len()))
            .unwrap_or_else(|e| panic!("version {version} file: {e}"));
        assert_eq!(model.header.version, version);
        assert_eq!(model.resize, Resize::shorter_side(4, 4));
        assert_eq!(model.meta, tiny_parts().0);
    }
}

#[test]
fn a_resize_block_in_a_version_2_file_is_refused() {
    // Version 2 readers stop after the int16 block: the recipe is unexpected bytes there.
    let mut file = build_with_resize(Resize::shorter_side(8, 8));
    set_u16(&mut file, field::VERSION, 2);
    recrc(&mut file);
    assert!(matches!(
        parse_err(&file),
        FormatError::BadMetadata("unexpected bytes after the metadata")
    ));
}

#[test]
fn golden_resize_block() {
    // Squash to 300×260: tag 1, then varints 300 = ac 02 and 260 = 84 02.
    let resize = Resize {
        mode: ResizeMode::Squash,
        size: [300, 260],
    };
    assert_eq!(
        postcard::to_allocvec(&resize).unwrap(),
        [0x01, 0xac, 0x02, 0x84, 0x02]
    );
    for mode in [ResizeMode::Shorter, ResizeMode::Squash] {
        assert_eq!(ResizeMode::from_tag(mode.tag()), Some(mode));
        assert_eq!(
            postcard::to_allocvec(&mode).unwrap(),
            [mode.tag() as u8],
            "{mode:?}"
        );
    }
    assert_eq!(ResizeMode::from_tag(2), None);
}
