//! The slow-model benchmark's workloads: named, reproducible sets of models
//! chosen by a seed. Generated shapes cover what used to take 30 minutes
//! (millions of triangles, thousands of layers, many shells, overhangs);
//! real files come from folders; a mix has production's proportions.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How big the benchmark is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// For CI: models small enough for a debug build, under a minute.
    Quick,
    /// For real measurements: the slow models at full size.
    Full,
}

impl Preset {
    /// Jobs in a mix run.
    pub fn jobs(self) -> usize {
        match self {
            Preset::Quick => 12,
            Preset::Full => 96,
        }
    }

    /// Worker counts of the scaling curve.
    pub fn workers(self) -> Vec<usize> {
        match self {
            Preset::Quick => vec![1, 2],
            Preset::Full => vec![1, 2, 4],
        }
    }

    /// The farm's `FARM_SLOW_LANE_TRIANGLES` for the run: the generated slow
    /// models are over it, every small part under it.
    pub fn slow_lane_triangles(self) -> u64 {
        match self {
            Preset::Quick => 20_000,
            Preset::Full => 50_000,
        }
    }
}

/// What kind of model a job prices, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelClass {
    /// An ordinary part: a bracket-sized box or a ball.
    Small,
    /// Millions of triangles (a scanned or subdivided part).
    Dense,
    /// A tall part: thousands of layers to slice.
    Tall,
    /// A lattice of many separate shells.
    Lattice,
    /// Inverted cones: most of the surface needs support.
    Overhang,
    /// A real file from a folder.
    File,
}

impl ModelClass {
    pub fn is_slow(self) -> bool {
        matches!(self, ModelClass::Dense | ModelClass::Tall | ModelClass::Lattice | ModelClass::Overhang)
    }
}

/// One model of a workload.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub class: ModelClass,
    /// STL bytes, binary or ASCII.
    pub bytes: Vec<u8>,
}

/// An error building a workload.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("no `*.stl` file under {0}")]
    NoFiles(String),
}

/// A small, seeded generator (SplitMix64): the workload must be the same
/// for the same seed on every machine and every version of every crate, which
/// a general-purpose RNG crate does not promise.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high)`.
    pub fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// The generated slow models of a preset, each once.
pub fn slow_models(preset: Preset) -> Vec<Model> {
    let stl = mesh::write_binary_stl;
    match preset {
        Preset::Quick => vec![
            model("dense-sphere-60k", ModelClass::Dense, stl(&mesh::uv_sphere(30.0, 300, 101))),
            model("tall-tower-120mm", ModelClass::Tall, stl(&tower(8.0, 120.0, 48, 240))),
            model("lattice-216-shells", ModelClass::Lattice, stl(&lattice(6, 2.0, 1.0))),
            model("overhang-cones-9", ModelClass::Overhang, stl(&inverted_cones(3, 12.0, 10.0, 1200))),
        ],
        Preset::Full => vec![
            model("dense-sphere-4m", ModelClass::Dense, stl(&mesh::uv_sphere(60.0, 2800, 715))),
            // 1 m at the default 0.3 mm layers: 3,334 layers.
            model("tall-tower-1000mm", ModelClass::Tall, stl(&tower(12.0, 1000.0, 96, 2000))),
            model("lattice-8000-shells", ModelClass::Lattice, stl(&lattice(20, 1.5, 1.0))),
            model("overhang-cones-64", ModelClass::Overhang, stl(&inverted_cones(8, 14.0, 12.0, 2000))),
        ],
    }
}

/// A small part from the seed: a box or a ball of a few centimetres, a few
/// hundred to a few thousand triangles. Each one's size is new, so no two
/// share a quote.
pub fn small_model(rng: &mut SeededRng, index: usize) -> Model {
    if rng.below(2) == 0 {
        let size = [rng.range(10.0, 60.0), rng.range(10.0, 60.0), rng.range(5.0, 40.0)].map(|v| v as f32);
        model(&format!("box-{index}"), ModelClass::Small, mesh::write_binary_stl(&mesh::cuboid(size)))
    } else {
        let radius = rng.range(5.0, 25.0) as f32;
        let segments = 24 + rng.below(72) as u32;
        let triangles = mesh::uv_sphere(radius, segments, segments / 2);
        model(&format!("ball-{index}"), ModelClass::Small, mesh::write_binary_stl(&triangles))
    }
}

/// A mix in production's proportions: about one job in eight is slow, the
/// rest small parts (from `files` when given, else generated), in a seeded
/// order.
pub fn mix(preset: Preset, seed: u64, jobs: usize, files: &[Model]) -> Vec<Model> {
    let mut rng = SeededRng::new(seed);
    let slow = slow_models(preset);
    let slow_jobs = jobs.div_ceil(8).min(jobs);
    let mut models: Vec<Model> = (0..slow_jobs).map(|i| slow[i % slow.len()].clone()).collect();
    for index in 0..jobs - slow_jobs {
        if files.is_empty() {
            models.push(small_model(&mut rng, index));
        } else {
            models.push(files[rng.below(files.len())].clone());
        }
    }
    shuffle(&mut models, &mut rng);
    models
}

/// Every generated model once: five small parts and each slow one.
pub fn generated(preset: Preset, seed: u64) -> Vec<Model> {
    let mut rng = SeededRng::new(seed);
    let mut models: Vec<Model> = (0..5).map(|i| small_model(&mut rng, i)).collect();
    models.extend(slow_models(preset));
    models
}

/// The `*.stl` files under each path (a file is taken as it is), sorted by
/// path so the order is the same everywhere.
pub fn files(paths: &[PathBuf]) -> Result<Vec<Model>, WorkloadError> {
    let mut found = Vec::new();
    for path in paths {
        let before = found.len();
        collect_stl(path, &mut found)?;
        if found.len() == before {
            return Err(WorkloadError::NoFiles(path.display().to_string()));
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).map_err(|source| WorkloadError::Read { path: path.clone(), source })?;
            let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
            Ok(model(&name, ModelClass::File, bytes))
        })
        .collect()
}

fn collect_stl(path: &Path, found: &mut Vec<PathBuf>) -> Result<(), WorkloadError> {
    let read_error = |source| WorkloadError::Read { path: path.to_path_buf(), source };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(read_error)?;
        found.push(path.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let entry = entry.map_err(read_error)?.path();
        if entry.is_dir() {
            collect_stl(&entry, found)?;
        } else if entry.extension().is_some_and(|e| e.eq_ignore_ascii_case("stl")) {
            found.push(entry);
        }
    }
    Ok(())
}

/// Writes the generated set (every generated model once) to `dir`; the
/// paths written.
pub fn write_generated(preset: Preset, seed: u64, dir: &Path) -> Result<Vec<PathBuf>, WorkloadError> {
    std::fs::create_dir_all(dir).map_err(|source| WorkloadError::Write { path: dir.to_path_buf(), source })?;
    generated(preset, seed)
        .into_iter()
        .map(|m| {
            let path = dir.join(format!("{}.stl", m.name));
            std::fs::write(&path, &m.bytes).map_err(|source| WorkloadError::Write { path: path.clone(), source })?;
            Ok(path)
        })
        .collect()
}

/// The model's bytes made new to the farm for one run, with the geometry
/// unchanged: the run's tag goes into a binary STL's 80-byte header, or an
/// ASCII STL's `solid` name. The farm keys models and quotes by the bytes'
/// hash, so without this a second run would be answered from the quote cache
/// and measure nothing.
pub fn tagged(bytes: &[u8], tag: &str) -> Vec<u8> {
    let ascii = bytes.starts_with(b"solid") && bytes.len() >= 84 && {
        // A binary STL may start with "solid" too; its size gives it away.
        let count = u32::from_le_bytes([bytes[80], bytes[81], bytes[82], bytes[83]]) as usize;
        84 + 50 * count != bytes.len()
    };
    if ascii || (bytes.starts_with(b"solid") && bytes.len() < 84) {
        let rest = bytes.iter().position(|&b| b == b'\n').map_or(&bytes[bytes.len()..], |i| &bytes[i..]);
        let mut out = format!("solid {tag}").into_bytes();
        out.extend_from_slice(rest);
        return out;
    }
    let mut out = bytes.to_vec();
    if out.len() >= 80 {
        let header = format!("farm bench {tag}");
        let header = &header.as_bytes()[..header.len().min(80)];
        out[..80].fill(b' ');
        out[..header.len()].copy_from_slice(header);
    }
    out
}

fn model(name: &str, class: ModelClass, bytes: Vec<u8>) -> Model {
    Model { name: name.to_string(), class, bytes }
}

fn shuffle<T>(items: &mut [T], rng: &mut SeededRng) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// A closed prism of `sides` around, `height` tall, in `stories` bands
/// (more triangles, the same solid): a tall, thin part with many layers.
pub fn tower(radius: f32, height: f32, sides: u32, stories: u32) -> Vec<mesh::Triangle> {
    let sides = sides.max(3);
    let stories = stories.max(1);
    let point = |story: u32, side: u32| {
        let phi = 2.0 * std::f32::consts::PI * (side % sides) as f32 / sides as f32;
        [radius * phi.cos(), radius * phi.sin(), height * story as f32 / stories as f32]
    };
    let mut triangles = Vec::with_capacity((2 * sides * (stories + 1)) as usize);
    for side in 0..sides {
        // Caps: fans around the axis, facing down and up.
        triangles.push([[0.0, 0.0, 0.0], point(0, side + 1), point(0, side)]);
        triangles.push([[0.0, 0.0, height], point(stories, side), point(stories, side + 1)]);
        for story in 0..stories {
            let (a, b) = (point(story, side), point(story, side + 1));
            let (c, d) = (point(story + 1, side), point(story + 1, side + 1));
            triangles.push([a, b, d]);
            triangles.push([a, d, c]);
        }
    }
    triangles
}

/// `n`³ separate balls of `radius` with `gap` between them: a lattice of
/// many shells (120 triangles each).
pub fn lattice(n: u32, radius: f32, gap: f32) -> Vec<mesh::Triangle> {
    let ball = mesh::uv_sphere(radius, 12, 6);
    let pitch = 2.0 * radius + gap;
    let mut triangles = Vec::with_capacity((n * n * n) as usize * ball.len());
    for (x, y, z) in (0..n).flat_map(|x| (0..n).flat_map(move |y| (0..n).map(move |z| (x, y, z)))) {
        let offset = [x as f32 * pitch, y as f32 * pitch, z as f32 * pitch];
        triangles.extend(ball.iter().map(|t| t.map(|p| [p[0] + offset[0], p[1] + offset[1], p[2] + offset[2]])));
    }
    triangles
}

/// An `n`×`n` grid of cones standing on their tips: every side face looks
/// down, so the whole surface but the tops needs support.
pub fn inverted_cones(n: u32, radius: f32, height: f32, sides: u32) -> Vec<mesh::Triangle> {
    let sides = sides.max(3);
    let pitch = 2.0 * radius + 2.0;
    let mut triangles = Vec::new();
    for (i, j) in (0..n).flat_map(|i| (0..n).map(move |j| (i, j))) {
        let (cx, cy) = (i as f32 * pitch, j as f32 * pitch);
        let rim = |side: u32| {
            let phi = 2.0 * std::f32::consts::PI * (side % sides) as f32 / sides as f32;
            [cx + radius * phi.cos(), cy + radius * phi.sin(), height]
        };
        for side in 0..sides {
            triangles.push([[cx, cy, 0.0], rim(side + 1), rim(side)]);
            triangles.push([[cx, cy, height], rim(side), rim(side + 1)]);
        }
    }
    triangles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyse(triangles: &[mesh::Triangle]) -> mesh::MeshReport {
        mesh::analyze(&mesh::write_binary_stl(triangles), &mesh::AnalysisOptions::default()).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_workload_and_another_seed_another() {
        let names = |seed| mix(Preset::Quick, seed, 12, &[]).iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        let bytes = |seed| mix(Preset::Quick, seed, 12, &[]).iter().map(|m| m.bytes.clone()).collect::<Vec<_>>();
        assert_eq!(names(7), names(7));
        assert_eq!(bytes(7), bytes(7));
        assert_ne!(bytes(7), bytes(8));
    }

    #[test]
    fn a_mix_is_mostly_small_with_a_few_slow_models() {
        let models = mix(Preset::Quick, 3, 16, &[]);
        let slow = models.iter().filter(|m| m.class.is_slow()).count();
        assert_eq!(models.len(), 16);
        assert_eq!(slow, 2);
    }

    #[test]
    fn generated_shapes_are_closed_solids_with_the_promised_character() {
        let tower = analyse(&tower(8.0, 120.0, 48, 240));
        assert!(tower.topology.watertight && tower.topology.shells == 1, "{tower:?}");
        assert!((tower.volume - 120.0 * 8.0 * 8.0 * std::f64::consts::PI).abs() / tower.volume < 0.01);

        let lattice = analyse(&lattice(3, 2.0, 1.0));
        assert!(lattice.topology.watertight && lattice.topology.shells == 27, "{lattice:?}");
        let ball = analyse(&mesh::uv_sphere(2.0, 12, 6)).volume;
        assert!((lattice.volume - 27.0 * ball).abs() < 1e-3 && ball > 0.0);

        let cones = analyse(&inverted_cones(2, 12.0, 10.0, 64));
        assert_eq!(cones.topology.shells, 4);
        assert!(cones.topology.watertight && cones.geometry.signed_volume > 0.0, "outward winding: {cones:?}");
    }

    #[test]
    fn slow_models_go_to_the_slow_lane_and_small_ones_stay_fast() {
        for preset in [Preset::Quick, Preset::Full] {
            let threshold = preset.slow_lane_triangles() as usize;
            for m in slow_models(preset) {
                assert!((m.bytes.len() - 84) / 50 > threshold, "{} is under the threshold", m.name);
            }
        }
        let mut rng = SeededRng::new(1);
        for i in 0..50 {
            let m = small_model(&mut rng, i);
            assert!((m.bytes.len() - 84) / 50 < Preset::Quick.slow_lane_triangles() as usize, "{}", m.name);
        }
    }

    #[test]
    fn a_tag_changes_the_bytes_but_not_the_geometry() {
        let binary = mesh::write_binary_stl(&mesh::cuboid([10.0, 20.0, 30.0]));
        let tagged_binary = tagged(&binary, "run-1");
        assert_ne!(tagged_binary, binary);
        assert_eq!(tagged_binary.len(), binary.len());
        assert_eq!(tagged_binary[80..], binary[80..]);

        let ascii = b"solid part\nfacet normal 0 0 1\nendsolid part\n".to_vec();
        let tagged_ascii = tagged(&ascii, "run-1");
        assert!(tagged_ascii.starts_with(b"solid run-1\nfacet normal"), "{}", String::from_utf8_lossy(&tagged_ascii));
        assert_ne!(tagged(&binary, "run-2"), tagged_binary);
    }

    #[test]
    fn files_are_found_under_folders_and_a_folder_without_any_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.STL"), mesh::write_binary_stl(&mesh::cuboid([1.0; 3]))).unwrap();
        std::fs::write(dir.path().join("a.stl"), mesh::write_binary_stl(&mesh::cuboid([2.0; 3]))).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let found = files(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(found.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["a.stl", "b.STL"]);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(files(&[empty.path().to_path_buf()]), Err(WorkloadError::NoFiles(_))));
    }
}
