//! `get_rope_index` against the spec's worked examples (§5.3, §5.4), a mixed prompt whose expected
//! rows were produced by transformers 5.24's `Qwen3VLModel.get_rope_index`, and the mismatch
//! errors. Token ids are deliberately not Qwen's.

use glimpse_models::qwen3_vl::{decode_position, get_rope_index, RopeIndex, VisionTokenIds};
use glimpse_models::Error;

const IMG: u32 = 7;
const VID: u32 = 8;
const VS: u32 = 5;
const VE: u32 = 6;
const IDS: VisionTokenIds = VisionTokenIds {
    image_token_id: IMG,
    video_token_id: VID,
    vision_start_token_id: VS,
};

fn rows(r: &RopeIndex) -> [&[i64]; 3] {
    [&r.positions[0], &r.positions[1], &r.positions[2]]
}

#[test]
fn text_only_counts_up_with_zero_delta() {
    let ids: Vec<u32> = (100..117).collect();
    let r = get_rope_index(&ids, &[], &[], &IDS, 2).unwrap();
    let expected: Vec<i64> = (0..17).collect();
    assert_eq!(rows(&r), [&expected[..], &expected[..], &expected[..]]);
    assert_eq!(r.rope_delta, 0);
    assert_eq!(r.decode_positions(17, 2), vec![17, 18]);
}

#[test]
fn empty_prompt() {
    let r = get_rope_index(&[], &[], &[], &IDS, 2).unwrap();
    assert!(r.positions.iter().all(Vec::is_empty));
    assert_eq!(r.rope_delta, 0);
}

/// Spec §5.3: one image, grid (1, 4, 6) → 2×3 tokens.
#[test]
fn worked_example_one_image() {
    let mut ids = vec![100, 101, 102, VS];
    ids.extend([IMG; 6]);
    ids.push(VE);
    ids.extend([103, 104, 105, 106, 107, 102, 100, 108, 102]);
    assert_eq!(ids.len(), 20);
    let r = get_rope_index(&ids, &[[1, 4, 6]], &[], &IDS, 2).unwrap();
    let t = [
        0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    ];
    let h = [
        0, 1, 2, 3, 4, 4, 4, 5, 5, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    ];
    let w = [
        0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    ];
    assert_eq!(rows(&r), [&t[..], &h[..], &w[..]]);
    assert_eq!(r.rope_delta, -3);
    // §5.2: the first generated token (cache holds the 20 prompt tokens) sits at 17.
    assert_eq!(decode_position(20, r.rope_delta), 17);
    assert_eq!(r.decode_positions(20, 3), vec![17, 18, 19]);
}

/// Spec §5.4: video grid (2, 4, 4) with timestamp text of `n` tokens before each frame group and
/// the template's outer vision_start/vision_end kept (5.24 expansion).
#[test]
fn worked_example_video_with_timestamps() {
    for n in [1usize, 6, 7] {
        let ts = |seed: u32| (0..n as u32).map(move |k| 200 + seed + k);
        let mut ids = vec![100, 101, 102, VS];
        ids.extend(ts(0));
        ids.push(VS);
        ids.extend([VID; 4]);
        ids.push(VE);
        ids.extend(ts(50));
        ids.push(VS);
        ids.extend([VID; 4]);
        ids.extend([VE, VE]);
        ids.extend([103, 104, 102, 100, 105, 102]);
        assert_eq!(ids.len(), 23 + 2 * n);
        let r = get_rope_index(&ids, &[], &[[2, 4, 4]], &IDS, 2).unwrap();

        let n = n as i64;
        let mut t: Vec<i64> = (0..4 + n + 1).collect(); // markup, outer start, timestamp, start
        let mut h = t.clone();
        let mut w = t.clone();
        for base in [5 + n, 9 + 2 * n] {
            t.extend([base; 4]);
            h.extend([base, base, base + 1, base + 1]);
            w.extend([base, base + 1, base, base + 1]);
            // vision_end, then (after group 0) the next timestamp and vision_start.
            let tail: Vec<i64> = if base == 5 + n {
                (7 + n..=8 + 2 * n).collect()
            } else {
                (11 + 2 * n..=18 + 2 * n).collect()
            };
            t.extend(&tail);
            h.extend(&tail);
            w.extend(&tail);
        }
        assert_eq!(rows(&r), [&t[..], &h[..], &w[..]], "n = {n}");
        assert_eq!(r.rope_delta, -4, "n = {n}");
    }
}

/// Image (1,4,6), video (2,4,8) with timestamps, image (1,6,2): expected rows printed by
/// transformers 5.24 `Qwen3VLModel.get_rope_index` on these exact ids.
#[test]
fn mixed_images_and_video_match_transformers() {
    #[rustfmt::skip]
    let ids: Vec<u32> = vec![
        1, 2, 3, 5, 7, 7, 7, 7, 7, 7, 6, 9, 10, 5, 11, 12, 13, 5, 8, 8, 8, 8, 8, 8, 8, 8, 6, 14,
        15, 5, 8, 8, 8, 8, 8, 8, 8, 8, 6, 6, 16, 5, 7, 7, 7, 6, 17, 18,
    ];
    #[rustfmt::skip]
    let t = [
        0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 15, 15, 15, 15, 15, 15, 15,
        19, 20, 21, 22, 23, 23, 23, 23, 23, 23, 23, 23, 27, 28, 29, 30, 31, 31, 31, 34, 35, 36,
    ];
    #[rustfmt::skip]
    let h = [
        0, 1, 2, 3, 4, 4, 4, 5, 5, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 15, 15, 15, 16, 16, 16, 16,
        19, 20, 21, 22, 23, 23, 23, 23, 24, 24, 24, 24, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36,
    ];
    #[rustfmt::skip]
    let w = [
        0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 15, 16, 17, 18,
        19, 20, 21, 22, 23, 24, 25, 26, 23, 24, 25, 26, 27, 28, 29, 30, 31, 31, 31, 34, 35, 36,
    ];
    let r = get_rope_index(&ids, &[[1, 4, 6], [1, 6, 2]], &[[2, 4, 8]], &IDS, 2).unwrap();
    assert_eq!(rows(&r), [&t[..], &h[..], &w[..]]);
    assert_eq!(r.rope_delta, -11);
}

/// The merge size comes from the config, not a constant: merge 1 makes every patch a token.
#[test]
fn merge_size_is_a_parameter() {
    let ids = [100, VS, IMG, IMG, IMG, IMG, IMG, IMG, VE];
    let r = get_rope_index(&ids, &[[1, 2, 3]], &[], &IDS, 1).unwrap();
    assert_eq!(r.positions[0], [0, 1, 2, 2, 2, 2, 2, 2, 5]);
    assert_eq!(r.positions[1], [0, 1, 2, 2, 2, 3, 3, 3, 5]);
    assert_eq!(r.positions[2], [0, 1, 2, 3, 4, 2, 3, 4, 5]);
    assert_eq!(r.rope_delta, 5 + 1 - 9);
}

fn expect_count_mismatch(result: glimpse_models::Result<RopeIndex>, exp: usize, got_: usize) {
    match result {
        Err(Error::TokenCountMismatch { expected, got, .. }) => {
            assert_eq!((expected, got), (exp, got_))
        }
        other => panic!("expected TokenCountMismatch, got {other:?}"),
    }
}

#[test]
fn too_few_or_too_many_image_tokens() {
    let mut ids = vec![100, VS];
    ids.extend([IMG; 5]);
    ids.push(VE);
    expect_count_mismatch(get_rope_index(&ids, &[[1, 4, 6]], &[], &IDS, 2), 6, 5);
    ids.splice(2..2, [IMG; 2]);
    expect_count_mismatch(get_rope_index(&ids, &[[1, 4, 6]], &[], &IDS, 2), 6, 7);
    // Image tokens with no grid at all.
    expect_count_mismatch(get_rope_index(&ids, &[], &[], &IDS, 2), 0, 7);
}

#[test]
fn video_tokens_must_match_all_temporal_groups() {
    let mut ids = vec![100, VS];
    ids.extend([VID; 4]);
    ids.push(VE);
    // Grid (2, 4, 4) needs two groups of 4.
    expect_count_mismatch(get_rope_index(&ids, &[], &[[2, 4, 4]], &IDS, 2), 8, 4);
    // A grid passed as the wrong kind is caught too.
    expect_count_mismatch(get_rope_index(&ids, &[[1, 4, 4]], &[], &IDS, 2), 4, 0);
}

#[test]
fn a_run_split_inside_one_image_is_an_error() {
    // 6 image tokens in total, but broken 3 + 3 by text: not the layout of a (1, 4, 6) grid.
    let ids = [VS, IMG, IMG, IMG, VE, VS, IMG, IMG, IMG, VE];
    expect_count_mismatch(get_rope_index(&ids, &[[1, 4, 6]], &[], &IDS, 2), 6, 3);
    // The same tokens are fine as two (1, 2, 6) images.
    let r = get_rope_index(&ids, &[[1, 2, 6], [1, 2, 6]], &[], &IDS, 2).unwrap();
    assert_eq!(r.positions[2], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(r.rope_delta, 0);
}

#[test]
fn grids_the_merge_size_does_not_divide_are_rejected() {
    let ids = [VS, IMG, IMG, IMG, VE];
    for grid in [[1, 3, 4], [1, 4, 3], [0, 4, 4]] {
        match get_rope_index(&ids, &[grid], &[], &IDS, 2) {
            Err(Error::BadInput { what, .. }) => assert!(what.contains("image grid 0"), "{what}"),
            other => panic!("{grid:?}: expected BadInput, got {other:?}"),
        }
    }
}
