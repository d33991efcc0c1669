//! Tests of the plain-Rust layers: rasterizer, environments, episode collection, `.npz` episode
//! files, the replay buffer and safetensors checkpoints. No GPU is needed.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rssm::data::{
    check_finite, expect_keys, load_dir, load_npz, load_safetensors, save_npz, save_npz_with,
    save_safetensors, DataError, Episode, HostTensor, NpzCompression, ReplayBuffer, FRAME_LEN,
};
use rssm::envs::{
    collect_episode, collect_episode_with_limit, make_env, raster::Canvas, CartPole, Env, EnvError,
    Pendulum, RandomPolicy,
};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A fresh folder under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("rssm-envs-data-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn file_names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Pixel value of frame `t` at (row `y`, column `x`, channel `c`) in the synthetic episodes.
fn pattern(t: usize, y: usize, x: usize, c: usize) -> u8 {
    ((t * 7 + y * 3 + x * 5 + c * 101) % 256) as u8
}

/// A synthetic episode of `len` steps whose contents encode `(offset + t)` so windows can be
/// located: reward[t] = offset + t, action[t] = [offset + t, -(offset + t)] / 1000.
fn synthetic_episode(len: usize, offset: usize) -> Episode {
    let mut image = Vec::with_capacity(len * FRAME_LEN);
    for t in 0..len {
        for y in 0..64 {
            for x in 0..64 {
                for c in 0..3 {
                    image.push(pattern(offset + t, y, x, c));
                }
            }
        }
    }
    let action = (0..len)
        .flat_map(|t| {
            let v = (offset + t) as f32 / 1000.0;
            [v, -v]
        })
        .collect();
    let reward = (0..len).map(|t| (offset + t) as f32).collect();
    let mut discount = vec![1.0; len];
    discount[len - 1] = 0.0;
    Episode::new(image, action, reward, discount, 2).unwrap()
}

/// A `.npy` v1.0 file laid out byte for byte as numpy's `np.save` writes it: magic, version,
/// little-endian u16 header length, the dict literal, spaces and a newline so that the data
/// starts at a multiple of 64 bytes. (Written independently of the crate's own writer.)
fn numpy_npy(descr: &str, shape_repr: &str, fortran: bool, data: &[u8]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape_repr}, }}",
        if fortran { "True" } else { "False" }
    );
    let mut total = 10 + dict.len() + 1;
    let mut pad = 0;
    while total % 64 != 0 {
        total += 1;
        pad += 1;
    }
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&((dict.len() + pad + 1) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    assert_eq!(out.len() % 64, 0);
    out.extend_from_slice(data);
    out
}

/// Writes a zip of named entries (like `np.savez` with `Stored`, `np.savez_compressed` with
/// `Deflated`).
fn write_zip(path: &Path, entries: &[(&str, Vec<u8>)], method: CompressionMethod) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = ZipWriter::new(file);
    for (name, bytes) in entries {
        zip.start_file(
            *name,
            SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn f32_le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64_le(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The four arrays of a valid 3-step episode with A = 2, in numpy's byte format.
fn numpy_entries() -> Vec<(&'static str, Vec<u8>)> {
    let image: Vec<u8> = (0..3 * FRAME_LEN).map(|i| (i % 251) as u8).collect();
    vec![
        (
            "image.npy",
            numpy_npy("|u1", "(3, 64, 64, 3)", false, &image),
        ),
        (
            "action.npy",
            numpy_npy(
                "<f4",
                "(3, 2)",
                false,
                &f32_le(&[0.0, 0.0, 0.5, -0.5, 1.0, -1.0]),
            ),
        ),
        (
            "reward.npy",
            numpy_npy("<f4", "(3,)", false, &f32_le(&[0.0, 1.0, 2.5])),
        ),
        (
            "discount.npy",
            numpy_npy("<f4", "(3,)", false, &f32_le(&[1.0, 1.0, 0.0])),
        ),
    ]
}

/// Replaces entry `name` in `entries`.
fn with_entry(
    mut entries: Vec<(&'static str, Vec<u8>)>,
    name: &'static str,
    bytes: Vec<u8>,
) -> Vec<(&'static str, Vec<u8>)> {
    for e in &mut entries {
        if e.0 == name {
            e.1 = bytes.clone();
        }
    }
    entries
}

/// Loads a zip of `entries` and returns the error message, asserting it names the file.
fn npz_error(dir: &TempDir, file: &str, entries: &[(&str, Vec<u8>)]) -> String {
    let path = dir.path(file);
    write_zip(&path, entries, CompressionMethod::Stored);
    let err = load_npz(&path)
        .expect_err("loading should fail")
        .to_string();
    assert!(err.contains(file), "error does not name the file: {err}");
    err
}

// ---------------------------------------------------------------------------------------------
// Rasterizer
// ---------------------------------------------------------------------------------------------

fn count_pixels(c: &Canvas, color: [u8; 3]) -> usize {
    (0..64)
        .flat_map(|y| (0..64).map(move |x| (x, y)))
        .filter(|&(x, y)| c.pixel(x, y) == Some(color))
        .count()
}

#[test]
fn raster_circle_is_where_expected() {
    let mut c = Canvas::new([0, 0, 0]);
    c.fill_circle(20.0, 40.0, 6.0, [255, 255, 255]);
    assert_eq!(c.pixel(20, 40), Some([255; 3]));
    assert_eq!(c.pixel(23, 40), Some([255; 3]));
    assert_eq!(c.pixel(20, 30), Some([0; 3]));
    assert_eq!(c.pixel(40, 40), Some([0; 3]));
    // Area close to pi r^2 (edge pixels are partial; count the fully and mostly covered ones).
    let covered = (0..64 * 64).filter(|i| c.as_bytes()[i * 3] >= 128).count() as f32;
    let area = std::f32::consts::PI * 36.0;
    assert!(
        (covered - area).abs() < 8.0,
        "covered {covered}, area {area}"
    );
    // Anti-aliased edge: some pixels are strictly between background and colour.
    assert!(c.as_bytes().iter().any(|&v| v > 20 && v < 235));
    // HWC layout: pixel (x=20, y=40) is at byte (40 * 64 + 20) * 3.
    assert_eq!(c.as_bytes()[(40 * 64 + 20) * 3], 255);
}

#[test]
fn raster_axis_rect_covers_exact_pixels() {
    let mut c = Canvas::new([10, 20, 30]);
    c.fill_rect(4.0, 6.0, 14.0, 9.0, [200, 100, 50]);
    assert_eq!(count_pixels(&c, [200, 100, 50]), 10 * 3);
    assert_eq!(c.pixel(4, 6), Some([200, 100, 50]));
    assert_eq!(c.pixel(13, 8), Some([200, 100, 50]));
    assert_eq!(c.pixel(14, 8), Some([10, 20, 30]));
    assert_eq!(c.pixel(3, 6), Some([10, 20, 30]));
    // A half-pixel edge is half covered.
    let mut h = Canvas::new([0, 0, 0]);
    h.fill_rect(10.0, 10.0, 12.5, 12.0, [200, 200, 200]);
    assert_eq!(h.pixel(12, 10), Some([100, 100, 100]));
    c.clear([1, 2, 3]);
    assert_eq!(count_pixels(&c, [1, 2, 3]), 64 * 64);
}

#[test]
fn raster_rotated_rect_and_capsule() {
    // A 20x4 bar rotated by 90 degrees is a 4x20 bar.
    let mut r = Canvas::new([0; 3]);
    r.fill_rotated_rect(32.0, 32.0, 10.0, 2.0, std::f32::consts::FRAC_PI_2, [255; 3]);
    assert_eq!(r.pixel(32, 24), Some([255; 3]));
    assert_eq!(r.pixel(32, 40), Some([255; 3]));
    assert_eq!(r.pixel(24, 32), Some([0; 3]));
    assert_eq!(r.pixel(40, 32), Some([0; 3]));
    let full = count_pixels(&r, [255; 3]);
    assert!((76..=84).contains(&full), "{full}");
    // 45 degrees: the diagonal is covered, the unrotated bar's ends are not.
    let mut d = Canvas::new([0; 3]);
    d.fill_rotated_rect(32.0, 32.0, 10.0, 2.0, std::f32::consts::FRAC_PI_4, [255; 3]);
    assert_eq!(d.pixel(37, 37), Some([255; 3]));
    assert_eq!(d.pixel(26, 26), Some([255; 3]));
    assert_eq!(d.pixel(40, 32), Some([0; 3]));
    // Capsule (thick line): on the segment and at the round caps, not beside it.
    let mut l = Canvas::new([0; 3]);
    l.draw_line(10.0, 10.0, 50.0, 10.0, 4.0, [0, 255, 0]);
    for x in [10, 30, 49] {
        assert_eq!(l.pixel(x, 10), Some([0, 255, 0]), "x = {x}");
    }
    assert_eq!(l.pixel(30, 14), Some([0; 3]));
    assert_eq!(l.pixel(55, 10), Some([0; 3]));
    // Round cap: fully covered half a pixel past the end, partly covered 1.5 px past it.
    assert_eq!(l.pixel(9, 10), Some([0, 255, 0]));
    let partial = l.pixel(8, 10).unwrap()[1];
    assert!(partial > 128 && partial < 255, "{partial}");
}

#[test]
fn raster_small_motion_changes_pixels_smoothly() {
    let draw = |x: f32| {
        let mut c = Canvas::new([0; 3]);
        c.fill_circle(x, 30.0, 5.0, [255; 3]);
        c.into_bytes()
    };
    let a = draw(30.0);
    let b = draw(30.1);
    let diffs: Vec<i32> = a
        .iter()
        .zip(&b)
        .map(|(&p, &q)| (i32::from(p) - i32::from(q)).abs())
        .collect();
    let max = *diffs.iter().max().unwrap();
    assert!(max > 0, "a 0.1 px motion must change the image");
    assert!(
        max <= 40,
        "a 0.1 px motion changed a pixel by {max} (aliasing)"
    );
}

// ---------------------------------------------------------------------------------------------
// Environments
// ---------------------------------------------------------------------------------------------

#[test]
fn registry_names_defaults_and_errors() {
    let p = make_env("pendulum", None).unwrap();
    assert_eq!(
        (p.name(), p.action_dim(), p.action_repeat(), p.max_steps()),
        ("pendulum", 1, 2, 500)
    );
    let c = make_env(" CartPole ", None).unwrap();
    assert_eq!(
        (c.name(), c.action_dim(), c.action_repeat(), c.max_steps()),
        ("cartpole", 1, 4, 250)
    );
    assert_eq!(make_env("pendulum", Some(4)).unwrap().max_steps(), 250);
    let err = make_env("x", None).err().unwrap().to_string();
    assert_eq!(err, "unknown env 'x', available: pendulum, cartpole");
    let err = make_env("pendulum", Some(0)).err().unwrap().to_string();
    assert!(err.contains("action repeat"), "{err}");
    assert!(make_env("cartpole", Some(1001)).is_err());
}

#[test]
fn envs_are_deterministic_per_seed() {
    for name in ["pendulum", "cartpole"] {
        let run = |seed: u64| {
            let mut env = make_env(name, None).unwrap();
            let mut policy = RandomPolicy::new(1, 7);
            collect_episode_with_limit(&mut env, &mut policy, seed, Some(40)).unwrap()
        };
        let a = run(3);
        assert_eq!(a, run(3), "{name}: same seed, different episode");
        assert_ne!(a.image(), run(4).image(), "{name}: seed has no effect");
        assert_ne!(a.frame(0), a.frame(40), "{name}: observation never changes");
    }
}

#[test]
fn random_policy_holds_actions_for_the_mean_it_is_given() {
    use rssm::envs::collect::Policy;
    // Lengths of runs of identical actions over many steps.
    let mean_run = |mut p: RandomPolicy| {
        let acts: Vec<Vec<f32>> = (0..4000).map(|_| p.act(&[])).collect();
        for a in &acts {
            assert!(
                a.len() == 2 && a.iter().all(|x| (-1.0..=1.0).contains(x)),
                "{a:?}"
            );
        }
        let changes = acts.windows(2).filter(|w| w[0] != w[1]).count();
        acts.len() as f64 / (changes + 1) as f64
    };
    let iid = mean_run(RandomPolicy::new(2, 5));
    assert!(
        (iid - 1.0).abs() < 1e-9,
        "per-step policy repeated an action: {iid}"
    );
    assert!((mean_run(RandomPolicy::new(2, 5).with_hold(0.5)) - 1.0).abs() < 1e-9);
    let held = mean_run(RandomPolicy::new(2, 5).with_hold(4.0));
    assert!((3.4..4.6).contains(&held), "mean hold {held}, want about 4");
    // A reset starts a fresh draw; the policy stays reproducible from its seed.
    let mut a = RandomPolicy::new(1, 9).with_hold(1e9);
    let first = a.act(&[]);
    assert_eq!(a.act(&[]), first, "held action changed");
    a.reset();
    assert_ne!(a.act(&[]), first, "reset kept the held action");
    let mut b = RandomPolicy::new(1, 9).with_hold(1e9);
    assert_eq!(b.act(&[]), first);
    // On the pendulum, held actions swing far higher than per-step ones.
    let ret = |p: &mut RandomPolicy| {
        let mut env = Pendulum::new(2).unwrap();
        (0..4)
            .map(|s| collect_episode(&mut env, p, s).unwrap().total_reward())
            .sum::<f64>()
    };
    let (per_step, held) = (
        ret(&mut RandomPolicy::new(1, 3)),
        ret(&mut RandomPolicy::new(1, 3).with_hold(4.0)),
    );
    assert!(held > 2.0 * per_step, "held {held} vs per-step {per_step}");
}

#[test]
fn random_episodes_have_spec_shapes_and_rewards_in_range() {
    for (name, repeat, len) in [
        ("pendulum", 2, 501),
        ("pendulum", 4, 251),
        ("cartpole", 4, 251),
        ("cartpole", 8, 126),
    ] {
        let mut env = make_env(name, Some(repeat)).unwrap();
        let mut policy = RandomPolicy::new(env.action_dim(), 11);
        let ep = collect_episode(&mut env, &mut policy, 5).unwrap();
        assert_eq!(ep.len(), len, "{name} repeat {repeat}");
        assert_eq!(ep.image().len(), len * 64 * 64 * 3);
        assert_eq!(ep.action().len(), len);
        assert_eq!(ep.action_dim(), 1);
        assert_eq!(ep.action_at(0), &[0.0]);
        assert_eq!(ep.reward()[0], 0.0);
        // A time-limit end is not terminal: every discount is 1.
        assert!(ep.discount().iter().all(|&d| d == 1.0));
        assert!(!ep.is_terminal());
        assert!(ep.action().iter().all(|a| (-1.0..=1.0).contains(a)));
        assert!(ep.action()[1..].iter().any(|&a| a != 0.0));
        let max = repeat as f32;
        for &r in ep.reward() {
            assert!(
                (0.0..=max + 1e-5).contains(&r),
                "{name}: reward {r} outside [0, {max}]"
            );
        }
        // Stepping after the end is an error, not a panic.
        let err = env.step(&[0.0]).unwrap_err();
        assert!(matches!(err, EnvError::EpisodeOver { .. }), "{err}");
    }
}

#[test]
fn pendulum_reward_low_hanging_high_upright() {
    let mut env = Pendulum::new(2).unwrap();
    env.set_state(std::f64::consts::PI, 0.0);
    let down = env.step(&[0.0]).unwrap().reward;
    env.set_state(0.0, 0.0);
    let up = env.step(&[0.0]).unwrap().reward;
    env.set_state(std::f64::consts::FRAC_PI_2, 0.0);
    let side = env.step(&[0.0]).unwrap().reward;
    assert!(down < 0.05, "hanging down: {down}");
    assert!(up > 1.99, "upright: {up} (max 2 with repeat 2)");
    assert!(down < side && side < up, "{down} {side} {up}");
    // A random policy from the bottom scores little.
    let ep = collect_episode(&mut env, &mut RandomPolicy::new(1, 0), 1).unwrap();
    assert!(
        ep.total_reward() < 100.0,
        "random return {}",
        ep.total_reward()
    );
}

#[test]
fn pendulum_swing_up_is_solvable_within_the_torque_limit() {
    // Energy pumping (torque along the velocity until the upright energy is reached), then a
    // PD balance near the top: reaches upright and earns most of the available return, so the
    // task is solvable with |u| <= 1 and the reward rewards it.
    let mut env = Pendulum::new(2).unwrap();
    env.reset(0);
    let mut total = 0.0;
    for _ in 0..env.max_steps() {
        let (th, om) = env.state();
        let energy = 0.5 * 0.251 * om * om + 0.5 * 9.81 * th.cos();
        let u = if th.cos() > 0.85 {
            (-10.0 * th - om).clamp(-1.0, 1.0)
        } else if energy < 0.5 * 9.81 {
            om.signum()
        } else {
            0.0
        };
        total += env.step(&[u as f32]).unwrap().reward;
    }
    let (th, om) = env.state();
    assert!(
        th.cos() > 0.99 && om.abs() < 0.1,
        "not balanced at the end: {th} {om}"
    );
    assert!(total > 600.0, "return {total} (max 1000)");
}

#[test]
fn pendulum_physics_and_rendering() {
    let mut env = Pendulum::new(1).unwrap();
    // Hanging down, the bob is drawn below the pivot; upright, above.
    env.set_state(std::f64::consts::PI, 0.0);
    let down = env.render();
    env.set_state(0.0, 0.0);
    let up = env.render();
    let bob = [230u8, 90, 60];
    let px = |img: &[u8], x: usize, y: usize| {
        [
            img[(y * 64 + x) * 3],
            img[(y * 64 + x) * 3 + 1],
            img[(y * 64 + x) * 3 + 2],
        ]
    };
    assert_eq!(px(&down, 32, 56), bob);
    assert_eq!(px(&up, 32, 8), bob);
    assert_ne!(px(&down, 32, 8), bob);
    // A constant torque cannot hold the pendulum horizontal (gravity's torque is 4.9 N m):
    // from horizontal at rest with full torque upwards it still falls.
    env.set_state(std::f64::consts::FRAC_PI_2, 0.0);
    for _ in 0..10 {
        env.step(&[-1.0]).unwrap();
    }
    assert!(
        env.state().0 > std::f64::consts::FRAC_PI_2,
        "{:?}",
        env.state()
    );
    // Actions are clipped: 5 acts like 1.
    let mut a = Pendulum::new(2).unwrap();
    let mut b = Pendulum::new(2).unwrap();
    a.reset(9);
    b.reset(9);
    assert_eq!(a.step(&[5.0]).unwrap(), b.step(&[1.0]).unwrap());
    assert_eq!(a.state(), b.state());
}

#[test]
fn cartpole_reward_and_conservation_laws() {
    let mut env = CartPole::new(1).unwrap();
    env.set_state([0.0, 0.0, std::f64::consts::PI, 0.0]);
    let down = env.step(&[0.0]).unwrap().reward;
    assert!(down < 1e-6, "hanging still: {down}");
    env.set_state([0.0, 0.0, 0.0, 0.0]);
    let up = env.step(&[0.0]).unwrap().reward;
    assert!(up > 0.999, "balanced and centred: {up}");
    env.set_state([0.0, 0.0, 0.0, 0.0]);
    let pushed = env.step(&[1.0]).unwrap().reward;
    assert!(
        (0.79..0.81).contains(&pushed),
        "full control costs 1/5: {pushed}"
    );

    // Without force (and away from the rail ends) horizontal momentum and energy are conserved.
    let (m_c, m_p, l, g) = (1.0, 0.1, 0.5, 9.81);
    let momentum = |s: [f64; 4]| (m_c + m_p) * s[1] + m_p * l * s[2].cos() * s[3];
    let energy = |s: [f64; 4]| {
        let [_, xd, th, thd] = s;
        0.5 * (m_c + m_p) * xd * xd
            + m_p * l * xd * thd * th.cos()
            + 0.5 * (4.0 / 3.0) * m_p * l * l * thd * thd
            + m_p * g * l * th.cos()
    };
    env.set_state([0.0, 0.1, 0.3, 0.0]);
    let (p0, e0) = (momentum(env.state()), energy(env.state()));
    for _ in 0..200 {
        env.step(&[0.0]).unwrap();
    }
    let s = env.state();
    assert!(s[0].abs() < 1.8, "cart reached the rail: {s:?}");
    assert!(
        (momentum(s) - p0).abs() < 1e-6,
        "momentum {p0} -> {}",
        momentum(s)
    );
    assert!(
        (energy(s) - e0).abs() < 1e-4,
        "energy {e0} -> {}",
        energy(s)
    );
    // The pole, released tilted to +x, has fallen over; the cart recoiled toward -x.
    assert!(s[2].cos() < 0.9, "{s:?}");

    // Pushing right moves the cart right, and the rail stops it.
    env.set_state([0.0, 0.0, std::f64::consts::PI, 0.0]);
    env.step(&[1.0]).unwrap();
    assert!(env.state()[0] > 0.0);
    for _ in 0..300 {
        env.step(&[1.0]).unwrap();
    }
    assert!(env.state()[0] <= cartpole_limit() + 1e-12 && env.state()[0] > 1.7);

    // Hitting the rail end stops the cart inelastically; the pole keeps its generalized
    // momentum, so it pitches forward: theta_dot jumps by 3 cos(theta) x_dot / (4 l) = 3 rad/s.
    env.set_state([1.79, 2.0, 0.0, 0.0]);
    env.step(&[0.0]).unwrap();
    let s = env.state();
    assert_eq!((s[0], s[1]), (cartpole_limit(), 0.0), "{s:?}");
    assert!(
        (2.8..3.2).contains(&s[3]),
        "pole angular velocity after impact: {s:?}"
    );
}

fn cartpole_limit() -> f64 {
    rssm::envs::cartpole::RAIL_LIMIT
}

#[test]
fn step_errors_instead_of_panicking() {
    let mut env = Pendulum::new(2).unwrap();
    assert!(matches!(env.step(&[0.0]), Err(EnvError::NotReset { .. })));
    env.reset(0);
    let err = env.step(&[0.0, 1.0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "env 'pendulum': action has 2 component(s), expected 1"
    );
    let err = env.step(&[f32::NAN]).unwrap_err();
    assert!(err.to_string().contains("action[0] is NaN"), "{err}");
    let mut cp = CartPole::new(4).unwrap().with_time_limit(8).unwrap();
    cp.reset(0);
    assert!(cp.step(&[]).is_err());
    assert!(!cp.step(&[0.0]).unwrap().done);
    assert!(cp.step(&[0.0]).unwrap().done);
    assert!(matches!(cp.step(&[0.0]), Err(EnvError::EpisodeOver { .. })));
}

#[test]
fn collect_with_closure_policy_limits_and_bad_policies() {
    let mut env = make_env("cartpole", None).unwrap();
    let mut calls = 0;
    let mut policy = |obs: &[u8]| {
        assert_eq!(obs.len(), 64 * 64 * 3);
        calls += 1;
        vec![3.0] // clipped to 1 when applied and recorded
    };
    let ep = collect_episode_with_limit(&mut env, &mut policy, 0, Some(10)).unwrap();
    assert_eq!(calls, 10);
    assert_eq!(ep.len(), 11);
    assert_eq!(&ep.action()[1..], &[1.0; 10]);
    assert_eq!(ep.discount(), &[1.0; 11]);
    let mut bad = |_: &[u8]| vec![0.0, 0.0];
    let err = collect_episode(&mut env, &mut bad, 0).unwrap_err();
    assert!(
        matches!(
            err,
            EnvError::ActionDim {
                expected: 1,
                got: 2,
                ..
            }
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// .npz episodes
// ---------------------------------------------------------------------------------------------

#[test]
fn npz_round_trip_stored_and_deflated() {
    let dir = TempDir::new("npz-rt");
    let ep = synthetic_episode(7, 3);
    for (name, method) in [
        ("s.npz", NpzCompression::Stored),
        ("d.npz", NpzCompression::Deflated),
    ] {
        let path = dir.path(name);
        save_npz_with(&path, &ep, method).unwrap();
        assert_eq!(load_npz(&path).unwrap(), ep, "{name}");
    }
    // Deflate actually compresses the (repetitive) frames.
    let stored = std::fs::metadata(dir.path("s.npz")).unwrap().len();
    let deflated = std::fs::metadata(dir.path("d.npz")).unwrap().len();
    assert!(deflated < stored / 2, "{deflated} vs {stored}");
    // Episodes from an env round-trip too, and saving leaves no temporary file behind.
    let mut env = make_env("pendulum", None).unwrap();
    let ep =
        collect_episode_with_limit(&mut env, &mut RandomPolicy::new(1, 1), 2, Some(20)).unwrap();
    save_npz(dir.path("env.npz"), &ep).unwrap();
    save_npz(dir.path("env.npz"), &ep).unwrap(); // overwrite in place
    assert_eq!(load_npz(dir.path("env.npz")).unwrap(), ep);
    assert_eq!(dir.file_names(), vec!["d.npz", "env.npz", "s.npz"]);
}

#[test]
fn npz_saved_entries_match_numpy_layout() {
    let dir = TempDir::new("npz-layout");
    let image: Vec<u8> = (0..3 * FRAME_LEN).map(|i| (i % 251) as u8).collect();
    let action = vec![0.0, 0.0, 0.5, -0.5, 1.0, -1.0];
    let ep = Episode::new(
        image,
        action.clone(),
        vec![0.0, 1.0, 2.5],
        vec![1.0, 1.0, 0.0],
        2,
    )
    .unwrap();
    let path = dir.path("ep.npz");
    save_npz_with(&path, &ep, NpzCompression::Stored).unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut names: Vec<&str> = zip.file_names().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec!["action.npy", "discount.npy", "image.npy", "reward.npy"]
    );
    for (name, expected) in numpy_entries() {
        let mut bytes = Vec::new();
        zip.by_name(name).unwrap().read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, expected, "{name} differs from numpy's byte layout");
    }
}

#[test]
fn npz_loads_numpy_format_written_by_hand() {
    let dir = TempDir::new("npz-numpy");
    // The brief's header, exactly: version 1.0, padded to 64 bytes.
    let action = numpy_npy("<f4", "(3, 2)", false, &[]);
    assert_eq!(
        &action[..10],
        &[0x93, b'N', b'U', b'M', b'P', b'Y', 1, 0, 118, 0],
        "header length 118 = 128 - 10"
    );
    assert_eq!(
        std::str::from_utf8(&action[10..]).unwrap().trim_end(),
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"
    );
    for method in [CompressionMethod::Stored, CompressionMethod::Deflated] {
        let path = dir.path("numpy.npz");
        write_zip(&path, &numpy_entries(), method);
        let ep = load_npz(&path).unwrap();
        assert_eq!(ep.len(), 3);
        assert_eq!(ep.action_dim(), 2);
        assert_eq!(ep.action(), &[0.0, 0.0, 0.5, -0.5, 1.0, -1.0]);
        assert_eq!(ep.reward(), &[0.0, 1.0, 2.5]);
        assert_eq!(ep.discount(), &[1.0, 1.0, 0.0]);
        assert_eq!(ep.frame(2)[5], ((2 * FRAME_LEN + 5) % 251) as u8);
    }
    // Other tools' dtypes: float64 arrays, bool discount, [T, 1] reward, extra keys.
    let entries = with_entry(
        numpy_entries(),
        "reward.npy",
        numpy_npy("<f8", "(3, 1)", false, &f64_le(&[0.0, 1.0, 2.5])),
    );
    let entries = with_entry(
        entries,
        "action.npy",
        numpy_npy(
            "<f8",
            "(3, 2)",
            false,
            &f64_le(&[0.0, 0.0, 0.5, -0.5, 1.0, -1.0]),
        ),
    );
    let mut entries = with_entry(
        entries,
        "discount.npy",
        numpy_npy("|b1", "(3,)", false, &[1, 1, 0]),
    );
    entries.push(("log_extra.npy", numpy_npy("<i8", "(3,)", false, &[0; 24])));
    let path = dir.path("f64.npz");
    write_zip(&path, &entries, CompressionMethod::Deflated);
    let ep = load_npz(&path).unwrap();
    assert_eq!(ep.reward(), &[0.0, 1.0, 2.5]);
    assert_eq!(ep.action()[3], -0.5);
    assert_eq!(ep.discount(), &[1.0, 1.0, 0.0]);
    // DreamerV2-style files: `is_terminal` instead of `discount`.
    let mut entries: Vec<_> = numpy_entries()
        .into_iter()
        .filter(|e| e.0 != "discount.npy")
        .collect();
    entries.push((
        "is_terminal.npy",
        numpy_npy("|b1", "(3,)", false, &[0, 0, 1]),
    ));
    let path = dir.path("v2.npz");
    write_zip(&path, &entries, CompressionMethod::Stored);
    assert_eq!(load_npz(&path).unwrap().discount(), &[1.0, 1.0, 0.0]);
}

#[test]
fn npz_bad_files_name_the_problem() {
    let dir = TempDir::new("npz-bad");
    // Not a zip at all.
    let path = dir.path("garbage.npz");
    std::fs::write(&path, b"this is not a zip file").unwrap();
    let err = load_npz(&path).unwrap_err().to_string();
    assert!(
        err.contains("garbage.npz") && err.contains("not a readable .npz"),
        "{err}"
    );
    // Missing file.
    let err = load_npz(dir.path("absent.npz")).unwrap_err();
    assert!(
        matches!(err, DataError::Io { .. }) && err.to_string().contains("absent.npz"),
        "{err}"
    );
    // Truncated: a valid file cut in half.
    let good = dir.path("good.npz");
    save_npz(&good, &synthetic_episode(4, 0)).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path("cut.npz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_npz(&cut).unwrap_err().to_string();
    assert!(err.contains("cut.npz"), "{err}");
    // Corrupted deflate stream / checksum.
    let mut corrupt = bytes.clone();
    for b in &mut corrupt[200..260] {
        *b ^= 0x5a;
    }
    let corrupt_path = dir.path("corrupt.npz");
    std::fs::write(&corrupt_path, &corrupt).unwrap();
    let err = load_npz(&corrupt_path).unwrap_err().to_string();
    assert!(err.contains("corrupt.npz"), "{err}");

    let base = numpy_entries();
    let without: Vec<_> = base
        .iter()
        .filter(|e| e.0 != "discount.npy")
        .cloned()
        .collect();
    let err = npz_error(&dir, "missing.npz", &without);
    assert!(
        err.contains("missing array(s) discount")
            && err.contains("the file has: action, image, reward"),
        "{err}"
    );

    let err = npz_error(
        &dir,
        "dtype.npz",
        &with_entry(
            base.clone(),
            "image.npy",
            numpy_npy("<f4", "(3, 64, 64, 3)", false, &vec![0; 3 * FRAME_LEN * 4]),
        ),
    );
    assert!(
        err.contains("image has dtype '<f4', expected uint8"),
        "{err}"
    );

    let err = npz_error(
        &dir,
        "rdtype.npz",
        &with_entry(
            base.clone(),
            "reward.npy",
            numpy_npy("<i4", "(3,)", false, &[0; 12]),
        ),
    );
    assert!(err.contains("reward has dtype '<i4'"), "{err}");

    let err = npz_error(
        &dir,
        "steps.npz",
        &with_entry(
            base.clone(),
            "reward.npy",
            numpy_npy("<f4", "(2,)", false, &f32_le(&[0.0, 1.0])),
        ),
    );
    assert!(
        err.contains("disagree on the number of steps") && err.contains("reward 2"),
        "{err}"
    );

    let err = npz_error(
        &dir,
        "small.npz",
        &with_entry(
            base.clone(),
            "image.npy",
            numpy_npy("|u1", "(3, 32, 32, 3)", false, &vec![0; 3 * 32 * 32 * 3]),
        ),
    );
    assert!(
        err.contains("image has shape [3, 32, 32, 3], expected [T, 64, 64, 3]"),
        "{err}"
    );

    let err = npz_error(
        &dir,
        "chw.npz",
        &with_entry(
            base.clone(),
            "image.npy",
            numpy_npy("|u1", "(3, 3, 64, 64)", false, &vec![0; 3 * FRAME_LEN]),
        ),
    );
    assert!(err.contains("channels-first"), "{err}");

    let err = npz_error(
        &dir,
        "nan.npz",
        &with_entry(
            base.clone(),
            "reward.npy",
            numpy_npy("<f4", "(3,)", false, &f32_le(&[0.0, f32::NAN, 1.0])),
        ),
    );
    assert!(err.contains("reward[1] is NaN"), "{err}");

    let err = npz_error(
        &dir,
        "inf.npz",
        &with_entry(
            base.clone(),
            "action.npy",
            numpy_npy(
                "<f4",
                "(3, 2)",
                false,
                &f32_le(&[0.0, 0.0, 0.0, f32::INFINITY, 0.0, 0.0]),
            ),
        ),
    );
    assert!(err.contains("action[1, 1] is inf"), "{err}");

    let err = npz_error(
        &dir,
        "fortran.npz",
        &with_entry(
            base.clone(),
            "action.npy",
            numpy_npy("<f4", "(3, 2)", true, &f32_le(&[0.0; 6])),
        ),
    );
    assert!(
        err.contains("Fortran-order") && err.contains("'action'"),
        "{err}"
    );

    let mut short = numpy_npy("<f4", "(3,)", false, &f32_le(&[0.0, 1.0, 2.0]));
    short.truncate(short.len() - 3);
    let err = npz_error(
        &dir,
        "shortdata.npz",
        &with_entry(base.clone(), "reward.npy", short),
    );
    assert!(
        err.contains("truncated data") && err.contains("'reward'"),
        "{err}"
    );

    let mut bad_header = numpy_npy("<f4", "(3,)", false, &f32_le(&[0.0; 3]));
    bad_header[20] = b'@';
    let err = npz_error(
        &dir,
        "header.npz",
        &with_entry(base.clone(), "reward.npy", bad_header),
    );
    assert!(err.contains("malformed .npy header"), "{err}");

    let err = npz_error(
        &dir,
        "magic.npz",
        &with_entry(base, "discount.npy", b"PK-not-an-npy".to_vec()),
    );
    assert!(
        err.contains("not an .npy array") && err.contains("'discount'"),
        "{err}"
    );
}

#[test]
fn npz_load_dir_sorts_and_reports_bad_files() {
    let dir = TempDir::new("npz-dir");
    save_npz(dir.path("b.npz"), &synthetic_episode(5, 0)).unwrap();
    save_npz(dir.path("a.npz"), &synthetic_episode(3, 0)).unwrap();
    std::fs::write(dir.path("c.npz"), b"broken").unwrap();
    std::fs::write(dir.path("notes.txt"), b"ignored").unwrap();
    std::fs::create_dir(dir.path("sub.npz")).unwrap();
    let (episodes, failed) = load_dir(&dir.0).unwrap();
    assert_eq!(
        episodes.iter().map(Episode::len).collect::<Vec<_>>(),
        vec![3, 5]
    );
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, dir.path("c.npz"));
    assert!(failed[0].1.to_string().contains("c.npz"));
    let err = load_dir(dir.path("nope")).unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("list folder"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Replay buffer
// ---------------------------------------------------------------------------------------------

#[test]
fn replay_sample_shapes_scaling_and_windows() {
    let mut rb = ReplayBuffer::new(usize::MAX).unwrap();
    rb.push(synthetic_episode(12, 0)).unwrap();
    rb.push(synthetic_episode(9, 1000)).unwrap();
    rb.push(synthetic_episode(4, 2000)).unwrap(); // too short for T = 6: never sampled
    let (b, t) = (16, 6);
    let batch = rb.sample_with_seed(b, t, 42).unwrap();
    assert_eq!(
        (batch.batch_size, batch.seq_len, batch.action_dim),
        (b, t, 2)
    );
    assert_eq!(batch.obs.len(), b * t * 3 * 64 * 64);
    assert_eq!(batch.action.len(), b * t * 2);
    assert_eq!(batch.reward.len(), b * t);
    assert_eq!(batch.cont.len(), b * t);
    let mut starts = std::collections::HashSet::new();
    for i in 0..b {
        let first = batch.reward[i * t] as usize;
        let (offset, len) = if first >= 1000 { (1000, 9) } else { (0, 12) };
        assert!(first - offset + t <= len, "window runs past its episode");
        starts.insert(first);
        for k in 0..t {
            let step = first + k; // offset + index within the episode
            let idx = step - offset;
            // Consecutive steps of one episode.
            assert_eq!(batch.reward[i * t + k], step as f32);
            let v = step as f32 / 1000.0;
            assert_eq!(
                &batch.action[(i * t + k) * 2..(i * t + k + 1) * 2],
                &[v, -v]
            );
            assert_eq!(
                batch.cont[i * t + k],
                if idx == len - 1 { 0.0 } else { 1.0 }
            );
            // NCHW, scaled u8 / 255 - 0.5.
            let frame = &batch.obs[(i * t + k) * FRAME_LEN..(i * t + k + 1) * FRAME_LEN];
            for &(c, y, x) in &[(0, 0, 0), (1, 5, 9), (2, 63, 1), (0, 17, 63)] {
                let expected = f32::from(pattern(step, y, x, c)) / 255.0 - 0.5;
                assert_eq!(frame[c * 4096 + y * 64 + x], expected, "c{c} y{y} x{x}");
            }
        }
    }
    assert!(starts.len() > 3, "samples should vary: {starts:?}");
    assert!(batch.obs.iter().all(|&v| (-0.5..=0.5).contains(&v)));
    // Deterministic per seed.
    assert_eq!(batch, rb.sample_with_seed(b, t, 42).unwrap());
    assert_ne!(batch.reward, rb.sample_with_seed(b, t, 43).unwrap().reward);
    // Reusing a batch's buffers gives the same result.
    let mut reused = rssm::data::Batch::default();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(42);
    rb.sample_into(&mut reused, b, t, &mut rng).unwrap();
    assert_eq!(reused, batch);
}

#[test]
fn replay_errors_and_capacity() {
    let mut rb = ReplayBuffer::new(20).unwrap();
    let err = rb.sample_with_seed(2, 5, 0).unwrap_err().to_string();
    assert!(err.contains("no episode has at least T = 5 steps"), "{err}");
    rb.push(synthetic_episode(4, 0)).unwrap();
    let err = rb.sample_with_seed(2, 5, 0).unwrap_err().to_string();
    assert!(err.contains("longest 4 steps"), "{err}");
    assert!(rb.sample_with_seed(0, 4, 0).is_err());
    assert!(rb.sample_with_seed(1, 4, 0).is_ok());
    // Capacity in steps: oldest episodes go first.
    rb.push(synthetic_episode(10, 100)).unwrap();
    rb.push(synthetic_episode(10, 200)).unwrap();
    assert_eq!(rb.len(), 2);
    assert_eq!(rb.total_steps(), 20);
    assert_eq!(rb.episodes().next().unwrap().reward()[0], 100.0);
    // Action dimension must match.
    let one_d = Episode::new(vec![0; FRAME_LEN], vec![0.0], vec![0.0], vec![1.0], 1).unwrap();
    let err = rb.push(one_d).unwrap_err().to_string();
    assert!(
        err.contains("action_dim 1") && err.contains("action_dim 2"),
        "{err}"
    );
    assert!(ReplayBuffer::new(0).is_err());
}

#[test]
fn frame_to_chw_converts_layout() {
    let src: Vec<u8> = (0..FRAME_LEN).map(|i| (i % 256) as u8).collect();
    let mut dst = vec![0.0; FRAME_LEN];
    rssm::data::frame_to_chw(&src, &mut dst).unwrap();
    // HWC index (y, x, c) = (y * 64 + x) * 3 + c; CHW index = c * 4096 + y * 64 + x.
    let (y, x, c) = (10, 20, 2);
    assert_eq!(
        dst[c * 4096 + y * 64 + x],
        f32::from(src[(y * 64 + x) * 3 + c]) / 255.0 - 0.5
    );
    assert_eq!(dst[0], -0.5);
    assert!(rssm::data::frame_to_chw(&src[1..], &mut dst).is_err());
}

// ---------------------------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------------------------

fn sample_tensors() -> BTreeMap<String, HostTensor> {
    let mut m = BTreeMap::new();
    m.insert(
        "encoder.conv0.weight".to_string(),
        HostTensor::new(vec![2, 3], vec![1.0, -2.5, 0.0, -0.0, 1e-40, f32::MAX]).unwrap(),
    );
    m.insert(
        "encoder.conv0.bias".to_string(),
        HostTensor::new(vec![2], vec![0.25, -0.75]).unwrap(),
    );
    m.insert(
        "step".to_string(),
        HostTensor::new(vec![], vec![42.0]).unwrap(),
    );
    m
}

#[test]
fn safetensors_round_trip_atomic() {
    let dir = TempDir::new("st-rt");
    let path = dir.path("ckpt.safetensors");
    let tensors = sample_tensors();
    let meta: HashMap<String, String> = [("format".to_string(), "rssm".to_string())].into();
    save_safetensors(&path, &tensors, Some(meta.clone())).unwrap();
    let (loaded, loaded_meta) = load_safetensors(&path).unwrap();
    assert_eq!(loaded_meta, meta);
    assert_eq!(
        loaded.keys().collect::<Vec<_>>(),
        tensors.keys().collect::<Vec<_>>()
    );
    for (k, t) in &tensors {
        let l = &loaded[k];
        assert_eq!(l.shape, t.shape, "{k}");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&l.data),
            bits(&t.data),
            "{k}: values must round-trip bit-exactly"
        );
    }
    // Overwrite without metadata; only the final file exists afterwards.
    save_safetensors(&path, &tensors, None).unwrap();
    assert!(load_safetensors(&path).unwrap().1.is_empty());
    assert_eq!(dir.file_names(), vec!["ckpt.safetensors"]);
    // Inconsistent data is refused before anything is written.
    let mut bad = tensors.clone();
    bad.insert(
        "oops".to_string(),
        HostTensor {
            shape: vec![3, 3],
            data: vec![0.0; 8],
        },
    );
    let err = save_safetensors(dir.path("bad.safetensors"), &bad, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tensor 'oops'") && err.contains("needs 9 values but data has 8"),
        "{err}"
    );
    assert_eq!(dir.file_names(), vec!["ckpt.safetensors"]);
    assert!(HostTensor::new(vec![2, 2], vec![0.0; 3]).is_err());
}

#[test]
fn safetensors_bad_files_give_clear_errors() {
    let dir = TempDir::new("st-bad");
    let path = dir.path("ckpt.safetensors");
    save_safetensors(&path, &sample_tensors(), None).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let cut = dir.path("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let err = load_safetensors(&cut).unwrap_err().to_string();
    assert!(
        err.contains("cut.safetensors") && err.contains("truncated"),
        "{err}"
    );

    let cut_header = dir.path("cut_header.safetensors");
    std::fs::write(&cut_header, &bytes[..20]).unwrap();
    let err = load_safetensors(&cut_header).unwrap_err().to_string();
    assert!(
        err.contains("cut_header.safetensors") && err.contains("truncated"),
        "{err}"
    );

    let tiny = dir.path("tiny.safetensors");
    std::fs::write(&tiny, b"abc").unwrap();
    let err = load_safetensors(&tiny).unwrap_err().to_string();
    assert!(
        err.contains("tiny.safetensors") && err.contains("only 3 bytes"),
        "{err}"
    );

    let junk = dir.path("junk.safetensors");
    let mut j = 10u64.to_le_bytes().to_vec();
    j.extend_from_slice(b"not json!!");
    std::fs::write(&junk, &j).unwrap();
    let err = load_safetensors(&junk).unwrap_err().to_string();
    assert!(
        err.contains("junk.safetensors") && err.contains("not a valid safetensors file"),
        "{err}"
    );

    // Wrong dtype: an I64 tensor.
    let ints: Vec<u8> = [1i64, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![3], &ints).unwrap();
    let i64_path = dir.path("ints.safetensors");
    std::fs::write(
        &i64_path,
        safetensors::serialize([("counts", view)], None).unwrap(),
    )
    .unwrap();
    let err = load_safetensors(&i64_path).unwrap_err().to_string();
    assert!(
        err.contains("ints.safetensors") && err.contains("tensor 'counts'") && err.contains("I64"),
        "{err}"
    );

    // F16 / F64 tensors are converted.
    let halfs: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    let doubles: Vec<u8> = [0.125f64, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let h = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![2], &halfs).unwrap();
    let d = safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![1, 2], &doubles)
        .unwrap();
    let mixed = dir.path("mixed.safetensors");
    std::fs::write(
        &mixed,
        safetensors::serialize([("h", h), ("d", d)], None).unwrap(),
    )
    .unwrap();
    let (m, _) = load_safetensors(&mixed).unwrap();
    assert_eq!(m["h"].data, vec![1.5, -2.0]);
    assert_eq!(
        (m["d"].shape.clone(), m["d"].data.clone()),
        (vec![1, 2], vec![0.125, 3.0])
    );
    // F64 beyond the f32 range is refused rather than silently infinite.
    let big: Vec<u8> = 1e300f64.to_le_bytes().to_vec();
    let b = safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![1], &big).unwrap();
    let big_path = dir.path("big.safetensors");
    std::fs::write(&big_path, safetensors::serialize([("b", b)], None).unwrap()).unwrap();
    let err = load_safetensors(&big_path).unwrap_err().to_string();
    assert!(err.contains("outside the f32 range"), "{err}");
}

#[test]
fn expect_keys_reports_everything_at_once() {
    let tensors = sample_tensors();
    let ok: Vec<(&str, Vec<usize>)> = vec![
        ("encoder.conv0.weight", vec![2, 3]),
        ("encoder.conv0.bias", vec![2]),
        ("step", vec![]),
    ];
    expect_keys(&tensors, &ok).unwrap();
    let expected: Vec<(String, Vec<usize>)> = vec![
        ("encoder.conv0.weight".into(), vec![3, 2]),
        ("encoder.conv0.bias".into(), vec![2]),
        ("decoder.linear.weight".into(), vec![1024, 230]),
        ("decoder.linear.bias".into(), vec![1024]),
    ];
    let err = expect_keys(&tensors, &expected).unwrap_err();
    match &err {
        DataError::KeyMismatch {
            missing,
            unexpected,
            wrong_shape,
        } => {
            assert_eq!(missing, &["decoder.linear.weight", "decoder.linear.bias"]);
            assert_eq!(unexpected, &["step"]);
            assert_eq!(
                wrong_shape,
                &[("encoder.conv0.weight".to_string(), vec![3, 2], vec![2, 3])]
            );
        }
        other => panic!("wrong error kind: {other}"),
    }
    let msg = err.to_string();
    for part in [
        "2 missing key(s): decoder.linear.weight, decoder.linear.bias",
        "1 unexpected key(s): step",
        "encoder.conv0.weight expected [3, 2] found [2, 3]",
    ] {
        assert!(msg.contains(part), "{msg}");
    }
}

#[test]
fn check_finite_names_bad_tensors() {
    let mut tensors = sample_tensors();
    check_finite(&tensors).unwrap();
    tensors.get_mut("encoder.conv0.bias").unwrap().data[1] = f32::NAN;
    tensors.get_mut("step").unwrap().data[0] = f32::NEG_INFINITY;
    let err = check_finite(&tensors).unwrap_err().to_string();
    assert!(
        err.contains("'encoder.conv0.bias' has 1 non-finite value(s), first NaN at flat index 1"),
        "{err}"
    );
    assert!(err.contains("'step'") && err.contains("-inf"), "{err}");
    assert!(!err.contains("conv0.weight"), "{err}");
}
