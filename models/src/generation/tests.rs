use std::collections::VecDeque;

use candle_core::{Device, Tensor};

use super::*;

/// A model that returns scripted logits: step i puts its peak at `script[i]`.
struct Scripted {
    vocab: usize,
    script: VecDeque<u32>,
    steps: Vec<u32>,
    cancel_after: Option<(usize, CancelToken)>,
}

impl Scripted {
    fn new(vocab: usize, script: &[u32]) -> Self {
        Self {
            vocab,
            script: script.iter().copied().collect(),
            steps: vec![],
            cancel_after: None,
        }
    }
    fn next_logits(&mut self) -> Result<Tensor> {
        let peak = self.script.pop_front().expect("script ran out");
        let mut v = vec![0f32; self.vocab];
        v[peak as usize] = 10.0;
        Ok(Tensor::from_vec(v, self.vocab, &Device::Cpu)?)
    }
}

impl LanguageModel for Scripted {
    fn prefill(&mut self) -> Result<Tensor> {
        self.next_logits()
    }
    fn step(&mut self, token: u32) -> Result<Tensor> {
        self.steps.push(token);
        if let Some((n, c)) = &self.cancel_after {
            if self.steps.len() == *n {
                c.cancel();
            }
        }
        self.next_logits()
    }
}

/// Byte-level decoder: id < 256 is that byte; the rest are words.
struct Bytes;
impl Decode for Bytes {
    fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut bytes = vec![];
        for &id in ids {
            match id {
                0..=255 => bytes.push(id as u8),
                300 => bytes.extend_from_slice(b"<think>"),
                301 => bytes.extend_from_slice(b"</think>"),
                _ => bytes.extend_from_slice(b"?"),
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn greedy(max: usize, eos: &[u32]) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        top_k: 0,
        repetition_penalty: 1.0,
        presence_penalty: 0.0,
        seed: 1,
        max_new_tokens: max,
        eos_token_ids: eos.to_vec(),
    }
}

fn run(
    model: &mut Scripted,
    p: &SamplingParams,
    think_open: bool,
) -> (GenerationStats, Vec<StreamEvent>) {
    let mut events = vec![];
    let stats = generate(
        model,
        &[1, 2],
        p,
        &Bytes,
        think_open,
        &CancelToken::new(),
        &mut |e| events.push(e),
    )
    .unwrap();
    (stats, events)
}

fn streamed_text(events: &[StreamEvent]) -> String {
    let mut s = String::new();
    for e in events {
        if let StreamEvent::Token { segments, .. } | StreamEvent::Flush { segments } = e {
            for seg in segments {
                match seg {
                    Segment::Thinking(t) | Segment::Answer(t) => s.push_str(t),
                }
            }
        }
    }
    s
}

#[test]
fn stops_at_eos_and_excludes_it() {
    let eos = 299;
    let mut m = Scripted::new(400, &[b'h' as u32, b'i' as u32, eos, b'x' as u32]);
    let (stats, events) = run(&mut m, &greedy(10, &[eos]), false);
    assert_eq!(stats.token_ids, vec![b'h' as u32, b'i' as u32]);
    assert_eq!(stats.text, "hi");
    assert_eq!(stats.finish_reason, FinishReason::Eos);
    assert!(matches!(events.last(), Some(StreamEvent::Done(_))));
    // The EOS token is sampled from the second step's logits: exactly two steps ran.
    assert_eq!(m.steps, vec![b'h' as u32, b'i' as u32]);
}

#[test]
fn stops_at_max_new_tokens_without_an_extra_step() {
    let mut m = Scripted::new(400, &[b'a' as u32, b'b' as u32, b'c' as u32]);
    let (stats, _) = run(&mut m, &greedy(2, &[]), false);
    assert_eq!(stats.text, "ab");
    assert_eq!(stats.finish_reason, FinishReason::Length);
    assert_eq!(m.steps.len(), 1, "the last token's logits are never needed");
}

#[test]
fn never_emits_half_a_character() {
    // "é" = C3 A9 and "€" = E2 82 AC, split across tokens.
    let ids = [0xC3, 0xA9, 0xE2, 0x82, 0xAC, b'!' as u32];
    let mut m = Scripted::new(400, &ids);
    let (stats, events) = run(&mut m, &greedy(ids.len(), &[]), false);
    let chunks: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Token { segments, .. } => Some(
                segments
                    .iter()
                    .map(|s| match s {
                        Segment::Answer(t) | Segment::Thinking(t) => t.clone(),
                    })
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(chunks, vec!["", "é", "", "", "€", "!"]);
    assert_eq!(stats.text, "é€!");
    assert!(!stats.text.contains('\u{FFFD}'));
}

#[test]
fn cancel_stops_within_one_token() {
    let script: Vec<u32> = (0..50).map(|i| b'a' as u32 + (i % 20)).collect();
    let cancel = CancelToken::new();
    let mut m = Scripted::new(400, &script);
    m.cancel_after = Some((3, cancel.clone()));
    let mut events = vec![];
    let stats = generate(
        &mut m,
        &[],
        &greedy(50, &[]),
        &Bytes,
        false,
        &cancel,
        &mut |e| events.push(e),
    )
    .unwrap();
    assert_eq!(stats.finish_reason, FinishReason::Cancelled);
    // Cancelled during the 3rd step: the token that step produced is the last one.
    assert_eq!(stats.token_ids.len(), 4);
    assert_eq!(m.steps.len(), 3);
    // Already cancelled before starting: nothing runs.
    let mut m2 = Scripted::new(400, &script);
    let err = generate(
        &mut m2,
        &[],
        &greedy(5, &[]),
        &Bytes,
        false,
        &cancel,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::Cancelled));
}

#[test]
fn thinking_is_split_from_the_answer() {
    // Thinking template: the prompt opened <think>; the model writes "\nhm</think>\n\nok".
    let ids = [
        b'\n' as u32,
        b'h' as u32,
        b'm' as u32,
        301,
        b'\n' as u32,
        b'\n' as u32,
        b'o' as u32,
        b'k' as u32,
    ];
    let mut m = Scripted::new(400, &ids);
    let (stats, events) = run(&mut m, &greedy(ids.len(), &[]), true);
    assert_eq!(stats.thinking, "hm");
    assert_eq!(stats.answer, "ok");
    assert_eq!(streamed_text(&events), "hmok");
}

#[test]
fn tags_split_across_tokens_are_recognised() {
    let mut s = ThinkSplitter::new(false);
    let mut out = vec![];
    for chunk in ["a<th", "ink>x", "y</", "think", ">b<"] {
        out.extend(s.push(chunk));
    }
    out.extend(s.finish());
    assert_eq!(
        out,
        vec![
            Segment::Answer("a".into()),
            Segment::Thinking("x".into()),
            Segment::Thinking("y".into()),
            Segment::Answer("b".into()),
            Segment::Answer("<".into()),
        ]
    );
}

#[test]
fn sampling_is_seeded_and_respects_top_k() {
    let v: Vec<f32> = (0..50).map(|i| (i as f32) * 0.1).collect();
    let logits = Tensor::from_vec(v, 50, &Device::Cpu).unwrap();
    let mut p = greedy(1, &[]);
    p.temperature = 1.0;
    p.top_k = 3;
    let draw = |seed| {
        let mut p = p.clone();
        p.seed = seed;
        let mut s = Sampler::new(&p, &[]);
        (0..40)
            .map(|_| s.sample(&logits).unwrap())
            .collect::<Vec<_>>()
    };
    let a = draw(7);
    assert_eq!(a, draw(7), "same seed, same draws");
    assert!(
        a.iter().all(|&t| t >= 47),
        "top-k 3 keeps only the 3 largest: {a:?}"
    );
    assert!(
        a.iter().collect::<std::collections::HashSet<_>>().len() > 1,
        "it does sample"
    );
}

#[test]
fn repetition_penalty_follows_transformers() {
    // Token 5 leads by a little; penalising it (it was in the prompt) hands greedy to token 6.
    let mut v = vec![0f32; 10];
    v[5] = 2.0;
    v[6] = 1.5;
    let logits = Tensor::from_vec(v, 10, &Device::Cpu).unwrap();
    let mut p = greedy(1, &[]);
    assert_eq!(Sampler::new(&p, &[5]).sample(&logits).unwrap(), 5);
    p.repetition_penalty = 1.5; // 2.0 / 1.5 = 1.33 < 1.5
    assert_eq!(Sampler::new(&p, &[5]).sample(&logits).unwrap(), 6);
    // Presence penalty only counts generated tokens, not the prompt.
    let mut p = greedy(1, &[]);
    p.presence_penalty = 1.0;
    let mut s = Sampler::new(&p, &[5]);
    assert_eq!(s.sample(&logits).unwrap(), 5);
    assert_eq!(
        s.sample(&logits).unwrap(),
        6,
        "5 was generated once, now it pays 1.0"
    );
}

#[test]
fn generation_config_dialects() {
    let c: GenerationConfig = serde_json::from_str(r#"{"do_sample": true, "temperature": 0.7, "top_k": 20, "top_p": 0.8, "eos_token_id": [7, 3]}"#).unwrap();
    let p = SamplingParams::resolve(&c, &Overrides::default(), &[3, 9]);
    assert_eq!(p.eos_token_ids, vec![7, 3, 9]);
    assert_eq!((p.temperature, p.top_k, p.top_p), (0.7, 20, 0.8));
    let c: GenerationConfig = serde_json::from_str(r#"{"eos_token_id": 4}"#).unwrap();
    let p = SamplingParams::resolve(
        &c,
        &Overrides {
            temperature: Some(0.0),
            ..Default::default()
        },
        &[],
    );
    assert!(p.is_greedy());
    assert_eq!(p.eos_token_ids, vec![4]);
}
