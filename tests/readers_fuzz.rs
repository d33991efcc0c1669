//! The `.npz` episode reader and the safetensors reader on thousands of damaged files:
//! truncated at every section boundary and at many other offsets, bytes flipped, sizes declared
//! far beyond the file, wrong dtypes and shapes. Each must give a clean `Err` (or, where the
//! damage leaves a well-formed file, a consistent value) — never a panic, a hang or a huge
//! allocation. A panic is caught and reported as a failure naming the mutation; a global
//! allocator records the largest single allocation; every read is timed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rssm::data::{
    load_npz, load_safetensors, save_npz_with, save_safetensors, Episode, HostTensor,
    NpzCompression, FRAME_LEN,
};

/// Tracks the largest single allocation request, so a reader that trusts a declared size
/// (`Vec::with_capacity(n)` from a header) is caught even when the allocation would succeed.
struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// No read of these files (a few hundred KiB at most) may ask for more than this at once.
const MAX_ALLOCATION: usize = 32 << 20;
/// Nor take longer than this (they take about a millisecond).
const MAX_READ_TIME: Duration = Duration::from_secs(2);

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rssm-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What a damaged file must give.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    /// An error.
    Err,
    /// An error, or a value (damage that leaves a well-formed file, e.g. a flipped data byte).
    Any,
}

/// Runs `read` on `bytes` written to `path`; returns an error message (for the failure list)
/// if it panicked, allocated too much, took too long, or succeeded where it must fail.
fn check<T>(
    path: &Path,
    bytes: &[u8],
    what: &str,
    expect: Expect,
    read: impl Fn(&Path) -> Result<T, rssm::data::DataError>,
    valid: impl Fn(&T) -> bool,
) -> Option<String> {
    std::fs::write(path, bytes).unwrap();
    LARGEST.store(0, Ordering::Relaxed);
    let start = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| read(path)));
    let took = start.elapsed();
    let largest = LARGEST.load(Ordering::Relaxed);
    if took > MAX_READ_TIME {
        return Some(format!("{what}: took {took:?}"));
    }
    if largest > MAX_ALLOCATION {
        return Some(format!("{what}: allocated {largest} bytes at once"));
    }
    match outcome {
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Some(format!("{what}: panicked: {msg}"))
        }
        Ok(Ok(v)) if expect == Expect::Err => Some(format!("{what}: accepted ({})", valid(&v))),
        Ok(Ok(v)) if !valid(&v) => Some(format!("{what}: returned an inconsistent value")),
        Ok(Ok(_)) => None,
        Ok(Err(e)) => {
            let msg = e.to_string();
            // A clean error names the file.
            if msg.contains(path.file_name().unwrap().to_str().unwrap()) {
                None
            } else {
                Some(format!("{what}: error does not name the file: {msg}"))
            }
        }
    }
}

fn report(failures: Vec<String>, cases: usize) {
    eprintln!("{cases} damaged files read");
    assert!(
        failures.is_empty(),
        "{} of {cases} damaged files were mishandled:\n{}",
        failures.len(),
        failures[..failures.len().min(40)].join("\n")
    );
}

/// Offsets at which to cut a file: every offset near the given boundaries, and a regular
/// sweep of the whole file.
fn cut_points(len: usize, boundaries: &[usize], sweep: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = Vec::new();
    for &b in boundaries {
        for d in 0..=3 {
            cuts.push(b.saturating_sub(d));
            cuts.push((b + d).min(len - 1));
        }
    }
    cuts.extend((0..len).step_by((len / sweep).max(1)));
    cuts.extend(0..len.min(64));
    cuts.extend(len.saturating_sub(64)..len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts.retain(|&c| c < len);
    cuts
}

/// Offsets of the zip record signatures (local file header, central directory entry, end of
/// central directory): the sections of an `.npz`.
fn zip_sections(bytes: &[u8]) -> Vec<usize> {
    let sigs: [&[u8]; 3] = [b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"];
    let mut out = Vec::new();
    for i in 0..bytes.len().saturating_sub(3) {
        if sigs.iter().any(|s| &bytes[i..i + 4] == *s) {
            out.push(i);
            // The end of each record's fixed part and its name: where the data starts.
            out.push(i + 30);
            out.push(i + 46);
        }
    }
    // The .npy magic of stored entries and the end of their headers (data start).
    for i in 0..bytes.len().saturating_sub(6) {
        if &bytes[i..i + 6] == b"\x93NUMPY" {
            out.push(i);
            out.push(i + 10);
            if let Some(nl) = bytes[i..].iter().position(|&b| b == b'\n') {
                out.push(i + nl + 1);
            }
        }
    }
    out
}

fn episode(t: usize, a: usize) -> Episode {
    let image: Vec<u8> = (0..t * FRAME_LEN).map(|i| (i * 7 % 251) as u8).collect();
    let mut action: Vec<f32> = (0..t * a).map(|i| (i as f32 * 0.37).sin()).collect();
    action[..a].fill(0.0);
    let reward: Vec<f32> = (0..t).map(|i| i as f32 * 0.5).collect();
    let mut discount = vec![1.0; t];
    discount[t - 1] = 0.0;
    Episode::new(image, action, reward, discount, a).unwrap()
}

fn valid_episode(e: &Episode) -> bool {
    let t = e.len();
    t > 0
        && e.image().len() == t * FRAME_LEN
        && e.action().len() == t * e.action_dim()
        && e.reward().len() == t
        && e.discount().len() == t
}

#[test]
fn npz_reader_survives_damaged_archives() {
    let dir = tmpdir("npz");
    let mut failures = Vec::new();
    let mut cases = 0;
    for compression in [NpzCompression::Stored, NpzCompression::Deflated] {
        let good_path = dir.join("good.npz");
        save_npz_with(&good_path, &episode(2, 2), compression).unwrap();
        let good = std::fs::read(&good_path).unwrap();
        assert!(valid_episode(&load_npz(&good_path).unwrap()));
        let path = dir.join("damaged.npz");
        let name = format!("{compression:?}");

        // Truncations: at every section boundary and a sweep of the file.
        for cut in cut_points(good.len(), &zip_sections(&good), 400) {
            cases += 1;
            failures.extend(check(
                &path,
                &good[..cut],
                &format!("{name} cut at {cut}"),
                Expect::Err,
                |p: &Path| load_npz(p),
                valid_episode,
            ));
        }
        // Flipped bytes: every byte of the zip records, a sweep of the data.
        let mut flips: Vec<usize> = zip_sections(&good)
            .iter()
            .flat_map(|&s| s..(s + 80).min(good.len()))
            .collect();
        flips.extend((0..good.len()).step_by(97));
        flips.sort_unstable();
        flips.dedup();
        for &at in &flips {
            for mask in [0xFF, 0x01, 0x80] {
                let mut bad = good.clone();
                bad[at] ^= mask;
                cases += 1;
                failures.extend(check(
                    &path,
                    &bad,
                    &format!("{name} byte {at} ^ {mask:#x}"),
                    Expect::Any,
                    |p: &Path| load_npz(p),
                    valid_episode,
                ));
            }
        }
        // Huge declared sizes: every 4-byte size field of the zip records set to the maximum.
        let records = zip_sections(&good)
            .into_iter()
            .filter(|&s| s + 4 <= good.len() && good[s..].starts_with(b"PK"));
        for s in records {
            let fields: &[usize] = match &good[s..s + 4] {
                b"PK\x03\x04" => &[18, 22],
                b"PK\x01\x02" => &[20, 24, 42],
                _ => &[8, 10, 12, 16],
            };
            for &f in fields {
                for value in [0xFFFF_FFFFu32, 0x7FFF_FFFF, 0x1000_0000] {
                    let mut bad = good.clone();
                    let width = if good[s..].starts_with(b"PK\x05\x06") && f < 12 {
                        2
                    } else {
                        4
                    };
                    bad[s + f..s + f + width].copy_from_slice(&value.to_le_bytes()[..width]);
                    cases += 1;
                    failures.extend(check(
                        &path,
                        &bad,
                        &format!("{name} record at {s} field +{f} = {value:#x}"),
                        Expect::Any,
                        |p: &Path| load_npz(p),
                        valid_episode,
                    ));
                }
            }
        }
    }
    report(failures, cases);
    std::fs::remove_dir_all(&dir).ok();
}

/// An `.npy` file: a version-1.0 header with `dict` (padded as numpy does), then `data`.
fn npy(dict: &str, data: &[u8]) -> Vec<u8> {
    let hlen = dict.len() + 1;
    let pad = (64 - (10 + hlen) % 64) % 64;
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&((hlen + pad) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out.extend_from_slice(data);
    out
}

fn header(descr: &str, shape: &str) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
}

/// A well-formed zip of the given `.npy` entries (valid CRCs), so the damage reaches the
/// `.npy` parser rather than being caught by the zip layer's checksums.
fn npz(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file(format!("{name}.npy"), opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn npy_parser_survives_damaged_arrays() {
    let dir = tmpdir("npy");
    let path = dir.join("damaged.npz");
    let t = 2;
    let image = npy(&header("|u1", "(2, 64, 64, 3)"), &vec![7u8; t * FRAME_LEN]);
    let action = npy(&header("<f4", "(2, 1)"), &f32_bytes(&[0.0, 0.5]));
    let reward = npy(&header("<f4", "(2,)"), &f32_bytes(&[1.0, 2.0]));
    let discount = npy(&header("<f4", "(2,)"), &f32_bytes(&[1.0, 0.0]));
    let arrays = [
        ("image", image),
        ("action", action),
        ("reward", reward),
        ("discount", discount),
    ];
    let with = |key: &str, bytes: Vec<u8>| -> Vec<u8> {
        let entries: Vec<(&str, Vec<u8>)> = arrays
            .iter()
            .map(|(k, b)| (*k, if *k == key { bytes.clone() } else { b.clone() }))
            .collect();
        npz(&entries)
    };
    std::fs::write(&path, npz(&arrays)).unwrap();
    assert!(valid_episode(&load_npz(&path).unwrap()));

    let mut failures = Vec::new();
    let mut cases = 0;
    let mut run = |bytes: Vec<u8>, what: String, expect: Expect| {
        cases += 1;
        failures.extend(check(
            &path,
            &bytes,
            &what,
            expect,
            |p: &Path| load_npz(p),
            valid_episode,
        ));
    };
    for (key, good) in &arrays {
        // Every truncation of the header and a sweep of the data.
        let data_start = good.iter().position(|&b| b == b'\n').unwrap() + 1;
        for cut in cut_points(good.len(), &[6, 8, 10, data_start], 300) {
            run(
                with(key, good[..cut].to_vec()),
                format!("{key} cut at {cut}"),
                Expect::Err,
            );
        }
        // Every header byte flipped.
        for at in 0..data_start {
            for mask in [0xFF, 0x20, 0x01] {
                let mut bad = good.clone();
                bad[at] ^= mask;
                run(
                    with(key, bad),
                    format!("{key} header byte {at} ^ {mask:#x}"),
                    Expect::Any,
                );
            }
        }
        // Declared header lengths beyond the file, in every format version.
        for (version, len_bytes) in [
            (1u8, vec![0xFF, 0xFF]),
            (2, vec![0xFF, 0xFF, 0xFF, 0xFF]),
            (3, vec![0xFF, 0xFF, 0xFF, 0x7F]),
        ] {
            let mut bad = b"\x93NUMPY".to_vec();
            bad.extend_from_slice(&[version, 0]);
            bad.extend_from_slice(&len_bytes);
            bad.extend_from_slice(&good[10..]);
            run(
                with(key, bad),
                format!("{key} header length {len_bytes:x?} (v{version})"),
                Expect::Err,
            );
        }
    }
    // Huge declared shapes, wrong dtypes and layouts, header syntax nobody writes.
    let data = vec![0u8; 64];
    let bad_headers = [
        header("<f4", "(18446744073709551615, 2)"),
        header("<f4", "(4294967296, 4294967296)"),
        header("<f4", "(1099511627776,)"),
        header("<f4", "(99999999999999999999999,)"),
        header("<f4", "(-1,)"),
        header("<f4", "(2.5,)"),
        header("<f4", "()"),
        header(
            "<f4",
            "(2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)",
        ),
        header(
            "<f4",
            "((((((((((((((((((((2,),),),),),),),),),),),),),),),),),),),)",
        ),
        header("<c8", "(2,)"),
        header("|O", "(2,)"),
        header("<U4", "(2,)"),
        header("<M8[s]", "(2,)"),
        header("<f16", "(2,)"),
        header("<f0", "(2,)"),
        header("<f99999999999999999999", "(2,)"),
        header("|b2", "(2,)"),
        header("|V8", "(2,)"),
        header("", "(2,)"),
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }".to_string(),
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }".to_string(),
        "{'descr': '<f4', 'fortran_order': 1, 'shape': (2,), }".to_string(),
        "{'descr': '<f4', 'shape': (2,), }".to_string(),
        "{'descr': '<f4', 'fortran_order': False, }".to_string(),
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ".to_string(),
        "{'descr': '<f4\\x', 'fortran_order': False, 'shape': (2,), }".to_string(),
        "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }".to_string(),
        "['descr', '<f4']".to_string(),
        "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"
            .to_string(),
        "(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
            .to_string(),
        String::new(),
        "\u{e9}\u{e9}\u{e9}".to_string(),
    ];
    for key in ["image", "action", "reward", "discount"] {
        for h in &bad_headers {
            run(
                with(key, npy(h, &data)),
                format!("{key} header {h}"),
                Expect::Err,
            );
        }
    }
    // Right syntax, wrong meaning: every array with another array's dtype or shape.
    let wrong = [
        (
            "image",
            header("<f4", "(2, 64, 64, 3)"),
            vec![0u8; 2 * FRAME_LEN * 4],
        ),
        (
            "image",
            header("|u1", "(2, 3, 64, 64)"),
            vec![0u8; 2 * FRAME_LEN],
        ),
        (
            "image",
            header("|u1", "(2, 64, 64)"),
            vec![0u8; 2 * 64 * 64],
        ),
        (
            "image",
            header("|i1", "(2, 64, 64, 3)"),
            vec![0u8; 2 * FRAME_LEN],
        ),
        ("image", header("|u1", "(0, 64, 64, 3)"), vec![]),
        ("action", header("|u1", "(2, 1)"), vec![0u8; 2]),
        ("action", header("<i4", "(2, 1)"), vec![0u8; 8]),
        ("action", header("|b1", "(2, 1)"), vec![0u8; 2]),
        ("action", header("<f4", "(3, 1)"), vec![0u8; 12]),
        ("action", header("<f4", "(2, 0)"), vec![]),
        ("action", header("<f4", "(2, 1, 1)"), vec![0u8; 8]),
        (
            "action",
            header("<f4", "(2, 1)"),
            f32_bytes(&[f32::NAN, 0.0]),
        ),
        ("reward", header("<f4", "(2, 2)"), vec![0u8; 16]),
        ("reward", header("<f4", "(1,)"), vec![0u8; 4]),
        (
            "reward",
            header("<f8", "(2,)"),
            f64::INFINITY.to_le_bytes().repeat(2),
        ),
        ("discount", header("<f4", "(2,)"), f32_bytes(&[2.0, 0.0])),
        (
            "discount",
            header("<i8", "(2,)"),
            (-1i64).to_le_bytes().repeat(2),
        ),
        ("discount", header("<f4", "(2,)"), vec![0u8; 9]),
    ];
    for (key, h, d) in wrong {
        run(with(key, npy(&h, &d)), format!("{key} as {h}"), Expect::Err);
    }
    // Arrays missing, or entries that are not .npy at all.
    for key in ["image", "action", "reward", "discount"] {
        let entries: Vec<(&str, Vec<u8>)> =
            arrays.iter().filter(|(k, _)| *k != key).cloned().collect();
        run(npz(&entries), format!("without {key}"), Expect::Err);
        run(
            with(key, b"not an array".to_vec()),
            format!("{key} not npy"),
            Expect::Err,
        );
        run(with(key, Vec::new()), format!("{key} empty"), Expect::Err);
    }
    report(failures, cases);
    std::fs::remove_dir_all(&dir).ok();
}

fn tensors() -> BTreeMap<String, HostTensor> {
    let mut m = BTreeMap::new();
    m.insert(
        "a.weight".to_string(),
        HostTensor::new(vec![3, 4], (0..12).map(|i| i as f32 * 0.25).collect()).unwrap(),
    );
    m.insert(
        "b.bias".to_string(),
        HostTensor::new(vec![5], vec![1.0, -2.0, 3.5, 0.0, 7.0]).unwrap(),
    );
    m.insert(
        "scalar".to_string(),
        HostTensor::new(vec![], vec![42.0]).unwrap(),
    );
    m
}

type Loaded = (
    BTreeMap<String, HostTensor>,
    std::collections::HashMap<String, String>,
);

fn valid_tensors(loaded: &Loaded) -> bool {
    loaded
        .0
        .values()
        .all(|t| t.shape.iter().product::<usize>() == t.data.len())
}

/// A safetensors file from a hand-written header (the crate's writer only writes good ones).
fn safetensors_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn safetensors_reader_survives_damaged_files() {
    let dir = tmpdir("safetensors");
    let good_path = dir.join("good.safetensors");
    let mut meta = std::collections::HashMap::new();
    meta.insert("step".to_string(), "12".to_string());
    save_safetensors(&good_path, &tensors(), Some(meta)).unwrap();
    let good = std::fs::read(&good_path).unwrap();
    assert_eq!(load_safetensors(&good_path).unwrap().0, tensors());
    let path = dir.join("damaged.safetensors");
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let data_start = 8 + header_len;

    let mut failures = Vec::new();
    let mut cases = 0;
    let mut run = |bytes: Vec<u8>, what: String, expect: Expect| {
        cases += 1;
        failures.extend(check(
            &path,
            &bytes,
            &what,
            expect,
            |p: &Path| load_safetensors(p),
            valid_tensors,
        ));
    };
    // Truncation at every offset (the file is small), and one byte too many.
    for cut in 0..good.len() {
        run(good[..cut].to_vec(), format!("cut at {cut}"), Expect::Err);
    }
    let mut longer = good.clone();
    longer.push(0);
    run(longer, "a trailing byte".into(), Expect::Err);
    // Every header byte flipped; a sweep of the data.
    for at in (0..data_start).chain((data_start..good.len()).step_by(3)) {
        for mask in [0xFF, 0x20, 0x01, 0x80] {
            let mut bad = good.clone();
            bad[at] ^= mask;
            run(bad, format!("byte {at} ^ {mask:#x}"), Expect::Any);
        }
    }
    // Declared header lengths far beyond the file.
    for n in [
        u64::MAX,
        u64::MAX / 2,
        1 << 40,
        100_000_001,
        good.len() as u64,
        header_len as u64 + 1,
    ] {
        let mut bad = good.clone();
        bad[..8].copy_from_slice(&n.to_le_bytes());
        run(bad, format!("header length {n}"), Expect::Err);
    }
    // Hand-written headers: huge shapes and offsets, wrong dtypes, overlaps and gaps.
    let data = vec![0u8; 16];
    for (header, expect) in [
        (
            r#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,18446744073709551615]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[18446744073709551615,16]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,16]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"I32","shape":[4],"data_offsets":[0,16]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"BOOL","shape":[16],"data_offsets":[0,16]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"F8_E4M3","shape":[16],"data_offsets":[0,16]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"C64","shape":[2],"data_offsets":[0,16]}}"#,
            Expect::Err,
        ),
        (
            r#"{"x":{"dtype":"F33","shape":[4],"data_offsets":[0,16]}}"#,
            Expect::Err,
        ),
        (r#"{"x":{"dtype":"F32","shape":[4]}}"#, Expect::Err),
        (r#"{"x":{"shape":[4],"data_offsets":[0,16]}}"#, Expect::Err),
        (r#"{"x":[1,2,3]}"#, Expect::Err),
        (r#"{"__metadata__":{"a":1}}"#, Expect::Err),
        (r#"{"__metadata__":"x"}"#, Expect::Err),
        (r#"[]"#, Expect::Err),
        (r#"null"#, Expect::Err),
        (
            r#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}"#,
            Expect::Err,
        ),
        ("{\"x\":\u{0}}", Expect::Err),
        (
            r#"{"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#,
            Expect::Any,
        ),
        (
            r#"{"x":{"dtype":"F16","shape":[8],"data_offsets":[0,16]}}"#,
            Expect::Any,
        ),
        (
            r#"{"x":{"dtype":"BF16","shape":[8],"data_offsets":[0,16]}}"#,
            Expect::Any,
        ),
        (
            r#"{"x":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"y":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
            Expect::Any,
        ),
    ] {
        run(
            safetensors_file(header, &data),
            format!("header {header}"),
            expect,
        );
    }
    // F64 values outside the f32 range are an error, not infinities.
    run(
        safetensors_file(
            r#"{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#,
            &1e300f64.to_le_bytes(),
        ),
        "F64 1e300".into(),
        Expect::Err,
    );
    report(failures, cases);
    std::fs::remove_dir_all(&dir).ok();
}
