//! The cargo-fuzz targets' bodies (`fuzz/bodies/`), run on stable in every test run: a bounded,
//! seeded mutation fuzzer over valid seeds (real headers, messages and a real session log).
//!
//! This is not coverage-guided (that is `cargo +nightly fuzz run`, see `fuzz/README.md`): it
//! is the bounded fuzz run CI can afford, and it reproduces exactly from its seed. A failure
//! prints the input as hex, to be saved under `fuzz/artifacts/` and replayed with cargo-fuzz.
//! `TWINLOOP_FUZZ_ITERS` scales every target's iteration count (default 1).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinloop_rig::backbone::session_log::{FILE_HEADER_LEN, LogWriter};
use twinloop_rig::vocab::protocol::{Dtype, Header, Message, Stream};

#[path = "../../fuzz/bodies/header.rs"]
mod header;
#[path = "../../fuzz/bodies/log_reader.rs"]
mod log_reader;
#[path = "../../fuzz/bodies/message.rs"]
mod message;

/// Values at the edges of the integer types a header field can hold.
const INTERESTING: [u64; 9] = [
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    i64::MAX as u64,
    u64::MAX,
];

fn scale() -> usize {
    std::env::var("TWINLOOP_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// One to four random edits of `input`: bit flips, edge values over 1/2/4/8 bytes, inserted
/// and deleted ranges, a truncation, a duplicated chunk.
fn mutate(input: &mut Vec<u8>, rng: &mut ChaCha8Rng) {
    for _ in 0..rng.random_range(1..=4) {
        let len = input.len();
        match rng.random_range(0..6) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let width = [1usize, 2, 4, 8][rng.random_range(0..4)].min(len);
                let at = rng.random_range(0..=len - width);
                let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
                input[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
            }
            2 => {
                let at = rng.random_range(0..=len);
                let n = rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                input.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - at).min(64));
                input.drain(at..at + n);
            }
            4 => input.truncate(rng.random_range(0..=len)),
            _ if len > 0 => {
                let at = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - at).min(64));
                let chunk = input[at..at + n].to_vec();
                let to = rng.random_range(0..=len);
                input.splice(to..to, chunk);
            }
            _ => input.push(rng.random()),
        }
    }
}

/// Runs `body` on every seed (each must be accepted: the seeds are valid), then on
/// `iterations` mutants; a panic names the input. Returns how many mutants were accepted.
fn fuzz(name: &str, seeds: &[Vec<u8>], iterations: usize, body: fn(&[u8]) -> bool) -> usize {
    for (i, seed) in seeds.iter().enumerate() {
        assert!(body(seed), "fuzz target {name}: seed {i} is rejected");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x7a11_f00d);
    let mut accepted = 0;
    for i in 0..iterations * scale() {
        let mut input = seeds[rng.random_range(0..seeds.len())].clone();
        mutate(&mut input, &mut rng);
        match std::panic::catch_unwind(|| body(&input)) {
            Ok(ok) => accepted += usize::from(ok),
            Err(_) => {
                let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
                panic!("fuzz target {name}: mutant {i} violates its property; input (hex): {hex}");
            }
        }
    }
    accepted
}

fn headers() -> Vec<Header> {
    let mut frame = Header::new(Stream::TwoPhoton, Dtype::U16, &[512, 512], 7, 1_000_000);
    frame.aux = 7;
    frame.sent_ns = 123_456_789;
    vec![
        frame,
        Header::new(Stream::EyeCamera, Dtype::U8, &[240, 320], 0, -5),
        Header::new(Stream::Treadmill, Dtype::I64, &[1], u64::MAX, i64::MAX),
        Header::new(Stream::Sync, Dtype::U8, &[0], 1, 0),
        Header::new(Stream::Control, Dtype::Json, &[17], 0, 0),
    ]
}

/// `[3, topic.len(), topic.., 64, header.., payload..]`, the message body's framing.
fn framed(m: Message) -> Vec<u8> {
    let [topic, header, payload] = m.into_frames();
    let mut out = vec![3, topic.len() as u8];
    out.extend_from_slice(&topic);
    out.push(header.len() as u8);
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    out
}

#[test]
fn header_parser_survives_mutated_headers() {
    let seeds: Vec<Vec<u8>> = headers().iter().map(|h| h.encode().to_vec()).collect();
    let accepted = fuzz("header", &seeds, 200_000, header::run);
    // Mutants reach both paths: a fuzzer that only ever saw rejections proves little.
    assert!(accepted > 1_000, "{accepted} mutants accepted");
}

#[test]
fn message_validator_survives_mutated_messages() {
    let json = serde_json::json!({"event": "hello", "rig": "fuzz"});
    let seeds = vec![
        framed(Message::json(Stream::Control, 0, 0, &json)),
        framed(Message::cell_values(
            Stream::Activity,
            0,
            3,
            99,
            &[1.0, -2.0, 3.5],
        )),
        framed(Message {
            header: Header::new(Stream::TwoPhoton, Dtype::U16, &[4, 4], 1, 10),
            payload: vec![9u8; 32].into(),
        }),
    ];
    let accepted = fuzz("message", &seeds, 200_000, message::run);
    assert!(accepted > 1_000, "{accepted} mutants accepted");
}

#[test]
fn log_reader_survives_mutated_logs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.log");
    let mut writer = LogWriter::create_with_buffer(&path, 4096).unwrap();
    for i in 0..12u16 {
        let payload: Vec<u8> = (0..(i * 7) as u8).collect();
        writer.append(1 + i % 5, &payload).unwrap();
    }
    writer.finish().unwrap();
    let file = std::fs::read(&path).unwrap();
    // The body builds the file header itself from its first byte (1: format version 2).
    let mut seed = vec![1u8];
    seed.extend_from_slice(&file[FILE_HEADER_LEN..]);
    let accepted = fuzz("log_reader", &[seed], 5_000, log_reader::run);
    assert!(accepted > 1_000, "{accepted} mutants read back records");
}
