//! Host-side tables that depend only on the grids (transformers 5.24 `vision_utils.py`): patch
//! coordinates in merge-window order, bilinear taps into the learned position table, and the
//! attention segments. They are small (a few numbers per patch), so they are built on the CPU and
//! uploaded once per forward call.

/// `(t, h, w)` of one image or video, in patches.
pub type Grid = [usize; 3];

/// `(row, col)` of every patch of one frame of an `h × w` grid, in the processor's merge-window
/// order (§3.2): block row, block column, then row and column inside the `m × m` window.
pub fn merge_window_coords(h: usize, w: usize, m: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..h / m).flat_map(move |br| {
        (0..w / m).flat_map(move |bc| {
            (0..m).flat_map(move |ir| (0..m).map(move |ic| (br * m + ir, bc * m + ic)))
        })
    })
}

/// Rotary `(row, col)` positions of every patch of every grid, frames repeated (§3.4), as a flat
/// `[N × 2]` row-major buffer.
pub fn rotary_positions(grids: &[Grid], m: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for &[t, h, w] in grids {
        let frame: Vec<f32> = merge_window_coords(h, w, m)
            .flat_map(|(r, c)| [r as f32, c as f32])
            .collect();
        for _ in 0..t {
            out.extend_from_slice(&frame);
        }
    }
    out
}

/// The two taps and weights along one axis for target index `i` of `n`, resampling a table side
/// of `side` with align-corners semantics. Mirrors `_interpolation_axis_taps_weights` in f32
/// operation by operation, so indices and weights come out bit-identical (§3.3): the sample
/// position is `(i·(side−1)) / max(n−1, 1)` — multiply first — not `torch.linspace`.
fn axis_taps(i: usize, n: usize, side: usize) -> ([usize; 2], [f32; 2]) {
    let src = (i as f32 * (side - 1) as f32) / (n.saturating_sub(1).max(1)) as f32;
    let floor = src.floor();
    let mut taps = [0; 2];
    let mut weights = [0f32; 2];
    for offset in 0..2 {
        taps[offset] = (floor as usize + offset).min(side - 1);
        let distance = (src - floor - offset as f32).abs();
        weights[offset] = (1.0 - distance).max(0.0);
    }
    (taps, weights)
}

/// Bilinear taps into the `side × side` position table for every patch, in patch order.
/// `indices[k][p]` / `weights[k][p]` is tap `k` of patch `p`, taps ordered
/// `(y0,x0), (y0,x1), (y1,x0), (y1,x1)` like the 5.24 helper.
pub struct Interpolation {
    pub indices: [Vec<u32>; 4],
    pub weights: [Vec<f32>; 4],
}

pub fn interpolation(grids: &[Grid], side: usize, m: usize) -> Interpolation {
    let mut indices: [Vec<u32>; 4] = Default::default();
    let mut weights: [Vec<f32>; 4] = Default::default();
    for &[t, h, w] in grids {
        let rows: Vec<_> = (0..h).map(|i| axis_taps(i, h, side)).collect();
        let cols: Vec<_> = (0..w).map(|i| axis_taps(i, w, side)).collect();
        for _ in 0..t {
            for (r, c) in merge_window_coords(h, w, m) {
                let ((ry, wy), (cx, wx)) = (rows[r], cols[c]);
                for a in 0..2 {
                    for b in 0..2 {
                        indices[2 * a + b].push((ry[a] * side + cx[b]) as u32);
                        weights[2 * a + b].push(wy[a] * wx[b]);
                    }
                }
            }
        }
    }
    Interpolation { indices, weights }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_window_order_matches_spec_example() {
        // §3.2, grid (1, 4, 6).
        let got: Vec<_> = merge_window_coords(4, 6, 2).collect();
        #[rustfmt::skip]
        let want = [
            (0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3), (0, 4), (0, 5), (1, 4), (1, 5),
            (2, 0), (2, 1), (3, 0), (3, 1), (2, 2), (2, 3), (3, 2), (3, 3), (2, 4), (2, 5), (3, 4), (3, 5),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn interpolation_matches_spec_worked_example() {
        // §3.3: grid (1, 4, 6), G = 48.
        let it = interpolation(&[[1, 4, 6]], 48, 2);
        let tap = |p: usize| -> ([u32; 4], [f32; 4]) {
            (
                std::array::from_fn(|k| it.indices[k][p]),
                std::array::from_fn(|k| it.weights[k][p]),
            )
        };
        let close = |a: [f32; 4], b: [f32; 4]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
        // Patch (1, 2) is the 7th of the sequence.
        let (i, w) = tap(6);
        assert_eq!(i, [738, 739, 786, 787]);
        assert!(close(w, [0.0667, 0.2667, 0.1333, 0.5333]), "{w:?}");
        // Patch (1, 1) is the 4th.
        let (i, w) = tap(3);
        assert_eq!(i, [729, 730, 777, 778]);
        assert!(close(w, [0.2, 0.1333, 0.4, 0.2667]), "{w:?}");
        // Patch (3, 5) is the last; patch (0, 0) the first.
        assert_eq!(tap(23), ([2303; 4], [1.0, 0.0, 0.0, 0.0]));
        assert_eq!(tap(0), ([0, 1, 48, 49], [1.0, 0.0, 0.0, 0.0]));
    }

    #[test]
    fn frames_repeat_positions_and_taps() {
        let pos = rotary_positions(&[[2, 2, 4]], 2);
        assert_eq!(pos.len(), 2 * 8 * 2);
        assert_eq!(pos[..16], pos[16..]);
        assert_eq!(pos[..8], [0., 0., 0., 1., 1., 0., 1., 1.]);
        let it = interpolation(&[[2, 2, 4]], 16, 2);
        assert_eq!(it.indices[3][..8], it.indices[3][8..]);
    }
}
