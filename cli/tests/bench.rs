//! `glimpse bench` on the fixture checkpoints: the report has every field, in JSON and as a
//! table; bad arguments are one-line errors. Speed itself is not checked here.

use std::path::PathBuf;
use std::process::{Command, Output};

fn glimpse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures"))
        .output()
        .expect("the glimpse binary runs")
}

fn report(args: &[&str]) -> (String, serde_json::Value) {
    let out = glimpse(args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let json = serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    (stdout, json)
}

#[test]
fn quick_bench_reports_every_measure() {
    for (model, quant) in [("models/moe-hub", "none"), ("models/dense-v5", "q8_0")] {
        let (table, r) = report(&[
            "bench",
            "--model",
            model,
            "--quick",
            "--repeats",
            "2",
            "--dtype",
            "f32",
            "--threads",
            "1",
            "--quant",
            quant,
        ]);
        assert_eq!(r["threads"], 1);
        assert_eq!(r["repeats"], 2);
        assert_eq!(r["quant"], quant);
        assert!(r["load_ms"].as_f64().unwrap() > 0.0);
        assert!(r["peak_rss_mb"].as_f64().unwrap() > 0.0);
        let vision = r["vision"].as_array().unwrap();
        assert_eq!(vision.len(), 2);
        assert_eq!(vision[0]["grid_thw"], serde_json::json!([1, 16, 16]));
        assert_eq!(vision[1]["runs_ms"].as_array().unwrap().len(), 2);
        let prefill = r["prefill"].as_array().unwrap();
        assert_eq!(prefill[0]["tokens"], 64);
        assert_eq!(prefill[1]["tokens"], 128);
        assert!(prefill[1]["tokens_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(r["decode"]["tokens"], 16);
        assert!(r["decode"]["tokens_per_s"].as_f64().unwrap() > 0.0);
        // Decode's weight reads, and the read bandwidth measured beside them.
        let d = |key: &str| {
            r["decode"][key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key}: {r}"))
        };
        assert!(d("weight_mb_per_token") > 0.0);
        let rate = d("weight_mb_per_token") * d("tokens_per_s") / 1e3;
        assert!((d("weight_gb_per_s") - rate).abs() <= 1e-9 * rate);
        assert!(d("read_bandwidth_gb_per_s") >= d("read_bandwidth_median_gb_per_s"));
        let fraction = d("weight_gb_per_s") / d("read_bandwidth_gb_per_s");
        assert!((d("bandwidth_fraction") - fraction).abs() <= 1e-9 * fraction);
        // The probe's 512 MiB buffer is not the model's memory: these fixtures decode in a few
        // MB (the probe, counted by mistake, made both figures exceed 512).
        if let Some(growth) = r["memory"]["decode_peak_growth_mb"].as_f64() {
            assert!(growth < 256.0, "decode peak growth {growth} MB");
        }
        let peak = r["peak_rss_mb"].as_f64().unwrap();
        assert!(peak < 256.0, "process peak {peak} MB");
        // 480x270 → 256x480 pixels → 16x30 patches → 120 image tokens, plus 34 around them.
        assert_eq!(r["ttft"]["prompt_tokens"], 154);
        assert!(r["ttft"]["ms"].as_f64().unwrap() > 0.0);
        for row in [
            "load",
            "vision encode 256x256",
            "prefill 128 tokens",
            "decode 16",
            "decode weight reads",
            "read bandwidth",
            "peak RSS",
        ] {
            assert!(table.contains(row), "table lacks `{row}`:\n{table}");
        }
    }
}

#[test]
fn sizes_are_configurable() {
    let (_, r) = report(&[
        "bench",
        "--model",
        "models/dense-v5",
        "--images",
        "640x320",
        "--prefill",
        "9",
        "--decode-tokens",
        "3",
        "--decode-context",
        "5",
        "--repeats",
        "1",
        "--no-ttft",
    ]);
    assert_eq!(r["vision"][0]["grid_thw"], serde_json::json!([1, 20, 40]));
    assert_eq!(r["prefill"][0]["tokens"], 9);
    assert_eq!(r["decode"]["tokens"], 3);
    assert!(r["ttft"].is_null());
}

#[test]
fn bad_arguments_are_one_line_errors() {
    for (args, needle) in [
        (vec!["bench"], "--synthetic"),
        (vec!["bench", "--synthetic", "qwen3-vl-7b"], "qwen3-vl-7b"),
        (
            vec!["bench", "--synthetic", "qwen3-vl-2b", "--layers", "99"],
            "28 decoder layers",
        ),
        (
            vec!["bench", "--model", "models/dense-v5", "--quant", "q3"],
            "q3",
        ),
        (
            vec!["bench", "--model", "models/dense-v5", "--images", "12"],
            "WxH",
        ),
        (
            vec!["bench", "--model", "models/dense-v5", "--repeats", "0"],
            "repeats",
        ),
        (
            vec![
                "bench",
                "--synthetic",
                "qwen3-vl-30b-a3b",
                "--expert-layout",
                "rows",
            ],
            "rows",
        ),
    ] {
        let out = glimpse(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
