//! The human-readable table `glimpse bench` prints before its JSON line.

pub(super) fn print_table(r: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "model {}  dtype {}  quant {}  device {}  threads {}  repeats {} (medians)",
        r["model"].as_str().unwrap_or("?"),
        r["dtype"].as_str().unwrap_or("?"),
        r["quant"].as_str().unwrap_or("?"),
        r["device"].as_str().unwrap_or("?"),
        r["threads"],
        r["repeats"]
    );
    println!("bf16 GEMM: {}", r["cpu_bf16_gemm"].as_str().unwrap_or("?"));
    println!("{:<34} {:>14} {:>12}", "measure", "value", "cpu ms");
    println!("{:<34} {:>11.0} ms", "load", f(&r["load_ms"]));
    for v in r["vision"].as_array().into_iter().flatten() {
        let name = format!(
            "vision encode {}x{} ({} patches)",
            v["width"], v["height"], v["patches"]
        );
        println!(
            "{name:<34} {:>11.0} ms {:>12.0}",
            f(&v["ms"]),
            f(&v["cpu_ms"])
        );
    }
    for p in r["prefill"].as_array().into_iter().flatten() {
        let name = format!("prefill {} tokens", p["tokens"]);
        println!(
            "{name:<34} {:>8.1} tok/s {:>12.0}",
            f(&p["tokens_per_s"]),
            f(&p["cpu_ms"])
        );
    }
    if !r["decode"].is_null() {
        let name = format!(
            "decode {} tokens (ctx {})",
            r["decode"]["tokens"], r["decode"]["context"]
        );
        println!(
            "{name:<34} {:>8.2} tok/s {:>12.0}",
            f(&r["decode"]["tokens_per_s"]),
            f(&r["decode"]["cpu_ms"])
        );
        let d = &r["decode"];
        println!(
            "{:<34} {:>11.0} MB per token, {:.1} GB/s",
            "decode weight reads",
            f(&d["weight_mb_per_token"]),
            f(&d["weight_gb_per_s"])
        );
        if !d["read_bandwidth_gb_per_s"].is_null() {
            println!(
                "{:<34} {:>8.1} GB/s     decode at {:.0} % of it",
                "read bandwidth (best probe pass)",
                f(&d["read_bandwidth_gb_per_s"]),
                100.0 * f(&d["bandwidth_fraction"])
            );
        }
    }
    if !r["ttft"].is_null() {
        let name = format!(
            "first token, {}x{} image",
            r["ttft"]["width"], r["ttft"]["height"]
        );
        println!(
            "{name:<34} {:>11.0} ms {:>12.0}",
            f(&r["ttft"]["ms"]),
            f(&r["ttft"]["cpu_ms"])
        );
    }
    println!("{:<34} {:>11.0} MB", "peak RSS", f(&r["peak_rss_mb"]));
    let m = &r["memory"];
    println!(
        "{:<34} {:>11.0} MB (checkpoint {:.0} MB at this dtype)",
        "resident weights (RSS growth)",
        f(&m["resident_weights_mb"]),
        f(&m["checkpoint_weights_mb"])
    );
    println!(
        "{:<34} {:>11.0} MB {:>11.2}× weights",
        "load peak (RSS growth)",
        f(&m["load_peak_growth_mb"]),
        f(&m["load_peak_ratio"])
    );
    if !m["decode_peak_growth_mb"].is_null() {
        println!(
            "{:<34} {:>11.0} MB {:>11.2}× (weights + KV {:.1} MB)",
            "decode peak (RSS growth)",
            f(&m["decode_peak_growth_mb"]),
            f(&m["decode_peak_ratio"]),
            f(&m["kv_cache_mb"])
        );
    }
}
