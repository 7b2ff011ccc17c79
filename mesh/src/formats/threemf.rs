//! 3MF: the 3D Manufacturing Format's core specification, as PrusaSlicer,
//! Bambu Studio and Cura save it.
//!
//! A 3MF file is a zip package (read with the `zip` crate) of XML parts
//! (read with `quick-xml`, as a stream). `_rels/.rels` names the root model
//! part; its `<model unit=...>` holds `<resources>` (objects: a `<mesh>` of
//! vertices and triangles, or `<components>` that place other objects with
//! a transform) and a `<build>` of items that place objects on the plate.
//! Components of the production extension may name an object in another
//! model part (`p:path`), as Bambu Studio writes them. Every build item is
//! expanded through its components, its triangles transformed into the
//! plate's frame and converted from the model's unit to mm, and handed over
//! as one object. A transform that mirrors reverses the triangles' winding
//! so they still face out.
//!
//! The package is guarded against zip bombs before anything is inflated
//! (entries, declared sizes, compression ratios, the directory's bounds)
//! and while inflating (an entry that inflates past its declared size, or
//! past the budget left, is refused at that byte). Objects that are not
//! printed parts (`support`, `surface`, `other`) are left out with a warning.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Cursor, Read};
use std::rc::Rc;

use quick_xml::events::{BytesStart, Event};

use crate::formats::{CHUNK_TRIANGLES, ModelFormat, ModelInfo, ObjectRange};
use crate::read::Triangle;
use crate::{Limits, ReadError, ReadErrorKind, ReadWarning, Units};

/// The root model part when `_rels/.rels` does not name one.
const DEFAULT_MODEL_PART: &str = "3D/3dmodel.model";
const MODEL_RELATIONSHIP: &str = "http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel";
/// Entries inflating to more than this are held to the ratio limit.
const RATIO_CHECKED_BYTES: u64 = 1 << 20;
/// Components nest at most this deep.
const MAX_DEPTH: usize = 32;
/// XML elements open at once (a model nests about six).
const MAX_XML_DEPTH: usize = 64;

/// A row-vector affine transform, as 3MF writes it: `m00 m01 m02 m10 m11
/// m12 m20 m21 m22 m30 m31 m32`; a point `p` maps to `p · M`.
type Affine = [f64; 12];
const IDENTITY: Affine = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];

fn apply(m: &Affine, p: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|j| p[0] * m[j] + p[1] * m[3 + j] + p[2] * m[6 + j] + m[9 + j])
}

/// `first` then `second`.
fn compose(first: &Affine, second: &Affine) -> Affine {
    let mut out = [0.0; 12];
    for row in 0..4 {
        for j in 0..3 {
            let mut v = if row == 3 { second[9 + j] } else { 0.0 };
            for k in 0..3 {
                v += first[row * 3 + k] * second[k * 3 + j];
            }
            out[row * 3 + j] = v;
        }
    }
    out
}

fn mirrors(m: &Affine) -> bool {
    let det =
        m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
    det < 0.0
}

#[derive(Debug, Default)]
struct Object {
    name: Option<String>,
    printed: bool,
    kind: String,
    vertices: Vec<[f32; 3]>,
    triangles: Vec<[u32; 3]>,
    components: Vec<Placement>,
}

/// A component or a build item: an object (in a part) and where it goes.
#[derive(Debug, Clone)]
struct Placement {
    part: Option<String>,
    object: u32,
    transform: Affine,
}

#[derive(Debug, Default)]
struct ModelPart {
    unit: Option<Units>,
    objects: HashMap<u32, Object>,
    build: Vec<Placement>,
}

fn three_mf(part: &str, message: impl Into<String>) -> ReadError {
    ReadError::new(ReadErrorKind::ThreeMf { part: part.to_string(), message: message.into() })
}

fn zip_error(error: zip::result::ZipError) -> ReadError {
    ReadError::new(ReadErrorKind::Zip { message: error.to_string() })
}

pub(crate) fn read(
    bytes: &[u8],
    limits: &Limits,
    mut visit: impl FnMut(&[Triangle], u64),
) -> Result<ModelInfo, ReadError> {
    let mut package = Package::open(bytes, limits)?;
    let root = package.root_part()?.to_ascii_lowercase();
    let mut parts: HashMap<String, ModelPart> = HashMap::new();
    let mut tally = Tally::default();
    let main = package.parse_model(&root, limits, &mut tally)?;
    let scale = main.unit.unwrap_or(Units::Millimetre).to_mm();
    let units = main.unit.unwrap_or(Units::Millimetre);
    let build = main.build.clone();
    parts.insert(root.clone(), main);
    // Load the other parts that components or items name (each once, by
    // its name in any case, as the zip lookup finds it), then count what
    // every item expands to before anything is allocated for it.
    let mut pending: Vec<String> = Vec::new();
    let mut queued: HashSet<String> = HashSet::from([root.clone()]);
    let mut queue_named_parts = |part: &ModelPart, pending: &mut Vec<String>| {
        let placements = part.objects.values().flat_map(|o| &o.components).chain(&part.build);
        for path in placements.filter_map(|p| p.part.as_ref()) {
            if queued.insert(path.clone()) {
                pending.push(path.clone());
            }
        }
    };
    queue_named_parts(&parts[&root], &mut pending);
    while let Some(path) = pending.pop() {
        let part = package.parse_model(&path, limits, &mut tally)?;
        queue_named_parts(&part, &mut pending);
        parts.insert(path, part);
    }
    let mut counter = Counter { parts: &parts, memo: HashMap::new(), stack: HashSet::new() };
    let mut total = 0u64;
    let mut left_out: HashMap<String, u64> = HashMap::new();
    let mut items = Vec::new();
    for item in &build {
        let part = item.part.as_deref().unwrap_or(&root);
        let object = counter.object(part, item.object)?;
        if !object.printed {
            *left_out.entry(object.kind.clone()).or_default() += 1;
            continue;
        }
        let count = counter.count(part, item.object, 0)?;
        total = total.saturating_add(count);
        if total > limits.max_triangles {
            return Err(ReadError::new(ReadErrorKind::TooManyTriangles {
                triangles: total,
                limit: limits.max_triangles,
            }));
        }
        items.push((item, object.name.clone().unwrap_or_else(|| format!("object {}", item.object))));
    }
    let scale_m: Affine = [scale, 0.0, 0.0, 0.0, scale, 0.0, 0.0, 0.0, scale, 0.0, 0.0, 0.0];
    let mut emitter = Emitter { parts: &parts, counts: &counter.memo, chunk: Vec::new(), total, emitted: 0 };
    let mut objects = Vec::new();
    for (item, name) in items {
        let first = emitter.emitted;
        let part = item.part.as_deref().unwrap_or(&root);
        emitter.emit(part, item.object, &compose(&item.transform, &scale_m), &mut visit)?;
        objects.push(ObjectRange { name, first_triangle: first, triangles: emitter.emitted - first });
    }
    emitter.flush(&mut visit);
    let mut warnings = Vec::new();
    let mut kinds: Vec<_> = left_out.into_iter().collect();
    kinds.sort();
    for (kind, objects) in kinds {
        warnings.push(ReadWarning::ObjectsLeftOut { objects, kind });
    }
    Ok(ModelInfo { format: ModelFormat::ThreeMf, triangles: total, warnings, objects, units: Some(units) })
}

/// What the parts read so far hold: their vertices (for the vertex limit)
/// and the bytes of their vertices, triangles and placements (for the
/// memory budget), so parts nobody prints cannot fill memory either.
#[derive(Default)]
struct Tally {
    vertices: u64,
    bytes: u64,
}

impl Tally {
    /// A quarter of the memory budget: the vectors holding these may have
    /// grown to twice what they hold, and the analysis after the read needs
    /// the rest (a model whose parts are near this is too large to analyse
    /// within the budget anyway).
    fn hold(&mut self, bytes: usize, limits: &Limits, part: &str) -> Result<(), ReadError> {
        self.bytes += bytes as u64;
        let allowed = limits.memory_budget / 4;
        if self.bytes > allowed {
            return Err(three_mf(
                part,
                format!(
                    "its parts hold more than {allowed} bytes of vertices, triangles and components, a quarter of \
                     the memory budget"
                ),
            ));
        }
        Ok(())
    }
}

/// Counts the triangles an object expands to, and finds cycles and depth.
struct Counter<'a> {
    parts: &'a HashMap<String, ModelPart>,
    memo: HashMap<(String, u32), u64>,
    stack: HashSet<(String, u32)>,
}

impl<'a> Counter<'a> {
    fn object(&self, part: &str, id: u32) -> Result<&'a Object, ReadError> {
        let model = self.parts.get(part).ok_or_else(|| three_mf(part, "the part is missing from the package"))?;
        model.objects.get(&id).ok_or_else(|| three_mf(part, format!("no object with id {id}")))
    }

    fn count(&mut self, part: &str, id: u32, depth: usize) -> Result<u64, ReadError> {
        let key = (part.to_string(), id);
        if let Some(&n) = self.memo.get(&key) {
            return Ok(n);
        }
        if depth > MAX_DEPTH {
            return Err(three_mf(part, format!("components nest deeper than {MAX_DEPTH} levels")));
        }
        if !self.stack.insert(key.clone()) {
            return Err(three_mf(part, format!("object {id} contains itself through its components")));
        }
        let object = self.object(part, id)?;
        let mut n = object.triangles.len() as u64;
        for c in &object.components {
            // A component without a path names an object of its own part.
            let child_part = c.part.clone().unwrap_or_else(|| part.to_string());
            n = n.saturating_add(self.count(&child_part, c.object, depth + 1)?);
        }
        self.stack.remove(&key);
        self.memo.insert(key, n);
        Ok(n)
    }
}

struct Emitter<'a> {
    parts: &'a HashMap<String, ModelPart>,
    /// The counter's triangles per object: a subtree that holds none is not
    /// walked, so the walk costs at most the depth per triangle emitted (a
    /// fan-out of empty components a billion instances wide costs nothing).
    counts: &'a HashMap<(String, u32), u64>,
    chunk: Vec<Triangle>,
    total: u64,
    emitted: u64,
}

impl Emitter<'_> {
    /// Hands over `id`'s triangles in the frame `m` (the counter has
    /// checked that every object exists and nothing cycles).
    /// A placed corner beyond `f32` (a transform that scales a finite vertex
    /// past 3.4e38) is refused as a binary STL's infinite coordinate is.
    fn emit(
        &mut self,
        part: &str,
        id: u32,
        m: &Affine,
        visit: &mut impl FnMut(&[Triangle], u64),
    ) -> Result<(), ReadError> {
        if self.counts.get(&(part.to_string(), id)).is_none_or(|&n| n == 0) {
            return Ok(());
        }
        let Some(object) = self.parts.get(part).and_then(|p| p.objects.get(&id)) else { return Ok(()) };
        if !object.triangles.is_empty() {
            let place = |v: [f32; 3]| apply(m, v.map(f64::from)).map(|c| c as f32);
            // Each vertex placed once when the triangles use most of them;
            // each corner placed on its own when they use few of many (a
            // large vertex list instanced often must not cost its length
            // per instance).
            let placed: Vec<[f32; 3]> = if object.vertices.len() <= 3 * object.triangles.len() {
                object.vertices.iter().map(|&v| place(v)).collect()
            } else {
                Vec::new()
            };
            let flip = mirrors(m);
            for t in &object.triangles {
                let [a, b, c] = if placed.is_empty() {
                    t.map(|i| place(object.vertices[i as usize]))
                } else {
                    t.map(|i| placed[i as usize])
                };
                if ![a, b, c].iter().flatten().all(|c| c.is_finite()) {
                    return Err(ReadError::new(ReadErrorKind::NonFiniteCoordinate { triangle: self.emitted }));
                }
                self.chunk.push(if flip { [a, c, b] } else { [a, b, c] });
                self.emitted += 1;
                if self.chunk.len() == CHUNK_TRIANGLES {
                    visit(&self.chunk, self.total);
                    self.chunk.clear();
                }
            }
        }
        for c in &object.components {
            let child_part = c.part.clone().unwrap_or_else(|| part.to_string());
            self.emit(&child_part, c.object, &compose(&c.transform, m), visit)?;
        }
        Ok(())
    }

    fn flush(&mut self, visit: &mut impl FnMut(&[Triangle], u64)) {
        if !self.chunk.is_empty() {
            visit(&self.chunk, self.total);
            self.chunk.clear();
        }
    }
}

/// The zip package, checked against the limits before anything is inflated.
struct Package<'b> {
    archive: zip::ZipArchive<Cursor<&'b [u8]>>,
    /// Lower-case entry name (no leading slash) to index.
    names: HashMap<String, usize>,
    /// Bytes that may still be inflated.
    budget: u64,
    max_event_bytes: u64,
}

impl<'b> Package<'b> {
    fn open(bytes: &'b [u8], limits: &Limits) -> Result<Self, ReadError> {
        check_directory(bytes, limits)?;
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zip_error)?;
        let entries = archive.len() as u64;
        if entries > limits.max_zip_entries {
            return Err(ReadError::new(ReadErrorKind::ZipLimit {
                what: "the number of entries",
                value: entries,
                limit: limits.max_zip_entries,
            }));
        }
        let mut names = HashMap::new();
        let mut declared = 0u64;
        for index in 0..archive.len() {
            let file = archive.by_index_raw(index).map_err(zip_error)?;
            let (size, compressed) = (file.size(), file.compressed_size());
            declared = declared.saturating_add(size);
            if size > RATIO_CHECKED_BYTES && size / compressed.max(1) > limits.max_zip_ratio {
                return Err(ReadError::new(ReadErrorKind::ZipLimit {
                    what: "an entry's compression ratio",
                    value: size / compressed.max(1),
                    limit: limits.max_zip_ratio,
                }));
            }
            let name = file.name().map_err(zip_error)?.trim_start_matches('/').to_ascii_lowercase();
            names.insert(name, index);
        }
        if declared > limits.max_unzipped_bytes {
            return Err(ReadError::new(ReadErrorKind::ZipLimit {
                what: "the declared inflated size",
                value: declared,
                limit: limits.max_unzipped_bytes,
            }));
        }
        Ok(Self { archive, names, budget: limits.max_unzipped_bytes, max_event_bytes: limits.max_line_bytes })
    }

    /// An entry's reader, inflating at most its declared size and what is
    /// left of the budget, with the count of bytes it has inflated.
    fn entry(&mut self, part: &str) -> Result<(EntryReader<'_, 'b>, Rc<Cell<u64>>), ReadError> {
        let key = part.trim_start_matches('/').to_ascii_lowercase();
        let index = *self.names.get(&key).ok_or_else(|| three_mf(part, "the part is missing from the package"))?;
        let file = self.archive.by_index(index).map_err(zip_error)?;
        let limit = file.size().min(self.budget);
        let pulled = Rc::new(Cell::new(0));
        Ok((Bounded { inner: file, left: limit, declared: limit, pulled: pulled.clone() }, pulled))
    }

    /// The root model part that `_rels/.rels` names.
    fn root_part(&mut self) -> Result<String, ReadError> {
        if !self.names.contains_key("_rels/.rels") {
            return Ok(DEFAULT_MODEL_PART.to_string());
        }
        let (budget_before, max_event) = (self.budget, self.max_event_bytes);
        let (entry, pulled) = self.entry("_rels/.rels")?;
        let mut root = None;
        let used = for_each_element(entry, &pulled, max_event, "_rels/.rels", |e, _| {
            if e.local_name().as_ref() == "Relationship" {
                let ty = attribute(e, "Type")?;
                if ty.as_deref() == Some(MODEL_RELATIONSHIP) && root.is_none() {
                    root = attribute(e, "Target")?;
                }
            }
            Ok(())
        })?;
        self.budget = budget_before - used;
        Ok(root.map_or_else(|| DEFAULT_MODEL_PART.to_string(), |r| r.trim_start_matches('/').to_string()))
    }

    fn parse_model(&mut self, path: &str, limits: &Limits, tally: &mut Tally) -> Result<ModelPart, ReadError> {
        let path = path.trim_start_matches('/').to_string();
        let (budget_before, max_event) = (self.budget, self.max_event_bytes);
        let (entry, pulled) = self.entry(&path)?;
        let mut model = ModelPart::default();
        let mut current: Option<(u32, Object)> = None;
        let mut in_build = false;
        let part = path.as_str();
        let used = for_each_element(entry, &pulled, max_event, part, |e, event| {
            let name = e.local_name();
            match (event, name.as_ref()) {
                (Element::Open | Element::Empty, "model") => {
                    if let Some(unit) = attribute(e, "unit")? {
                        model.unit =
                            Some(parse_unit(&unit).ok_or_else(|| three_mf(part, format!("unknown unit `{unit}`")))?);
                    }
                }
                (Element::Open | Element::Empty, "object") => {
                    let id = number::<u32>(e, "id", part)?.ok_or_else(|| three_mf(part, "an object has no id"))?;
                    let kind = attribute(e, "type")?.unwrap_or_else(|| "model".into());
                    let object = Object {
                        name: attribute(e, "name")?,
                        printed: kind == "model" || kind == "solidsupport",
                        kind,
                        ..Object::default()
                    };
                    if event == Element::Empty {
                        model.objects.insert(id, object);
                    } else {
                        current = Some((id, object));
                    }
                }
                (Element::Close, "object") => {
                    if let Some((id, object)) = current.take() {
                        if let Some(bad) =
                            object.triangles.iter().flatten().find(|&&v| v as usize >= object.vertices.len())
                        {
                            return Err(three_mf(
                                part,
                                format!(
                                    "object {id} has a triangle with vertex {bad}, but {} vertices",
                                    object.vertices.len()
                                ),
                            ));
                        }
                        if model.objects.insert(id, object).is_some() {
                            return Err(three_mf(part, format!("two objects have the id {id}")));
                        }
                    }
                }
                (Element::Open | Element::Empty, "vertex") => {
                    let Some((_, object)) = current.as_mut() else {
                        return Err(three_mf(part, "a vertex outside an object"));
                    };
                    tally.vertices += 1;
                    if tally.vertices > limits.max_vertices {
                        return Err(ReadError::new(ReadErrorKind::TooManyVertices {
                            vertices: tally.vertices,
                            limit: limits.max_vertices,
                        }));
                    }
                    tally.hold(size_of::<[f32; 3]>(), limits, part)?;
                    let mut p = [0f32; 3];
                    for (c, key) in p.iter_mut().zip(["x", "y", "z"]) {
                        let value: f32 =
                            number(e, key, part)?.ok_or_else(|| three_mf(part, "a vertex needs x, y and z"))?;
                        if !value.is_finite() {
                            return Err(three_mf(part, "a vertex has a NaN or infinite coordinate"));
                        }
                        *c = value;
                    }
                    object.vertices.push(p);
                }
                (Element::Open | Element::Empty, "triangle") => {
                    let Some((_, object)) = current.as_mut() else {
                        return Err(three_mf(part, "a triangle outside an object"));
                    };
                    let mut t = [0u32; 3];
                    for (v, key) in t.iter_mut().zip(["v1", "v2", "v3"]) {
                        *v = number(e, key, part)?.ok_or_else(|| three_mf(part, "a triangle needs v1, v2 and v3"))?;
                    }
                    // Counted here too, so a part of triangles alone cannot
                    // grow past the limit before the build is counted.
                    if object.triangles.len() as u64 >= limits.max_triangles {
                        return Err(ReadError::new(ReadErrorKind::TooManyTriangles {
                            triangles: object.triangles.len() as u64 + 1,
                            limit: limits.max_triangles,
                        }));
                    }
                    tally.hold(size_of::<[u32; 3]>(), limits, part)?;
                    object.triangles.push(t);
                }
                (Element::Open | Element::Empty, "component") => {
                    let Some((_, object)) = current.as_mut() else {
                        return Err(three_mf(part, "a component outside an object"));
                    };
                    let placed = placement(e, part)?;
                    tally.hold(size_of::<Placement>() + placed.part.as_ref().map_or(0, String::len), limits, part)?;
                    object.components.push(placed);
                }
                (Element::Open, "build") => in_build = true,
                (Element::Close, "build") => in_build = false,
                (Element::Open | Element::Empty, "item") if in_build => {
                    let placed = placement(e, part)?;
                    tally.hold(size_of::<Placement>() + placed.part.as_ref().map_or(0, String::len), limits, part)?;
                    model.build.push(placed);
                }
                _ => {}
            }
            Ok(())
        })?;
        self.budget = budget_before - used;
        Ok(model)
    }
}

fn placement(e: &BytesStart<'_>, part: &str) -> Result<Placement, ReadError> {
    let object =
        number::<u32>(e, "objectid", part)?.ok_or_else(|| three_mf(part, "a component or item has no objectid"))?;
    let transform = match attribute(e, "transform")? {
        None => IDENTITY,
        Some(text) => {
            let values: Vec<f64> =
                text.split_ascii_whitespace().map(str::parse).collect::<Result<_, _>>().map_err(|_| {
                    three_mf(
                        part,
                        format!("transform `{}` is not 12 numbers", text.chars().take(80).collect::<String>()),
                    )
                })?;
            let m: Affine = values.try_into().map_err(|_| three_mf(part, "a transform needs 12 numbers"))?;
            if m.iter().any(|v| !v.is_finite()) {
                return Err(three_mf(part, "a transform has a NaN or infinite number"));
            }
            m
        }
    };
    // Zip entries are found by their name in any case, so parts are named
    // that way too: one part under any spelling is read once.
    let path = attribute(e, "path")?.map(|p| p.trim_start_matches('/').to_ascii_lowercase());
    Ok(Placement { part: path, object, transform })
}

fn parse_unit(unit: &str) -> Option<Units> {
    match unit {
        "micron" => Some(Units::Micron),
        "millimeter" => Some(Units::Millimetre),
        "centimeter" => Some(Units::Centimetre),
        "inch" => Some(Units::Inch),
        "foot" => Some(Units::Foot),
        "meter" => Some(Units::Metre),
        _ => None,
    }
}

/// An attribute's value by local name (`p:path` is `path`), unescaped.
fn attribute(e: &BytesStart<'_>, key: &str) -> Result<Option<String>, ReadError> {
    for attr in e.attributes().with_checks(false) {
        let attr = attr
            .map_err(|err| ReadError::new(ReadErrorKind::ThreeMf { part: "xml".into(), message: err.to_string() }))?;
        if attr.key.local_name().as_ref() == key {
            let value = attr.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|err| {
                ReadError::new(ReadErrorKind::ThreeMf { part: "xml".into(), message: err.to_string() })
            })?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// A numeric attribute, parsed without unescaping (numbers have no entities).
fn number<T: std::str::FromStr>(e: &BytesStart<'_>, key: &str, part: &str) -> Result<Option<T>, ReadError> {
    for attr in e.attributes().with_checks(false) {
        let attr = attr.map_err(|err| three_mf(part, err.to_string()))?;
        if attr.key.local_name().as_ref() == key {
            let text = attr.value.trim();
            return text.parse::<T>().map(Some).map_err(|_| {
                let shown: String = text.chars().take(40).collect();
                three_mf(part, format!("`{key}` of `{shown}` is not a valid number"))
            });
        }
    }
    Ok(None)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    Open,
    Empty,
    Close,
}

/// Streams `reader`'s XML, calling `visit` for each element's start, empty
/// form or end. Returns the bytes inflated. A single element or text over
/// `max_event` bytes is refused, so no tag can make the parser buffer an
/// entry whole.
fn for_each_element<R: Read>(
    reader: R,
    pulled: &Rc<Cell<u64>>,
    max_event: u64,
    part: &str,
    mut visit: impl FnMut(&BytesStart<'_>, Element) -> Result<(), ReadError>,
) -> Result<u64, ReadError> {
    let mut xml = quick_xml::Reader::from_reader(BufReader::with_capacity(1 << 16, reader));
    xml.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut total = 0u64;
    // quick-xml keeps the open elements' names; a file of unclosed tags
    // would grow that stack without end.
    let mut depth = 0usize;
    loop {
        pulled.set(0);
        let event = xml.read_event_into(&mut buf);
        total += pulled.get();
        // What one event pulled through the 64 KiB buffer.
        if pulled.get() > max_event.saturating_add(1 << 16) {
            return Err(ReadError::new(ReadErrorKind::LineTooLong { line: 0, limit: max_event }));
        }
        match event {
            Ok(Event::Start(e)) => {
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err(three_mf(part, format!("XML elements nest deeper than {MAX_XML_DEPTH} levels")));
                }
                visit(&e, Element::Open)?;
            }
            Ok(Event::Empty(e)) => visit(&e, Element::Empty)?,
            Ok(Event::End(e)) => {
                depth = depth.saturating_sub(1);
                let name = e.name();
                let start = BytesStart::new(name.as_ref().to_string());
                visit(&start, Element::Close)?;
            }
            Ok(Event::Eof) if depth > 0 => {
                return Err(three_mf(part, format!("the XML ends with {depth} elements still open")));
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(err) => {
                if let Some(io) = find_io(&err) {
                    return Err(io);
                }
                return Err(three_mf(part, format!("XML error at byte {}: {err}", xml.error_position())));
            }
        }
        buf.clear();
    }
    Ok(total)
}

/// An XML error that is really the inflater refusing (a zip bomb guard or
/// a corrupt entry), turned back into the typed error it carries.
fn find_io(err: &quick_xml::Error) -> Option<ReadError> {
    let quick_xml::Error::Io(io) = err else { return None };
    let inner = io.get_ref()?.downcast_ref::<BoundedError>()?;
    Some(inner.0.clone())
}

/// One entry of the package being inflated, within its bound.
type EntryReader<'a, 'b> = Bounded<zip::read::ZipFile<'a, Cursor<&'b [u8]>>>;

#[derive(Debug)]
struct BoundedError(ReadError);

impl std::fmt::Display for BoundedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BoundedError {}

/// Inflates at most `left` bytes: one more is an error, whatever the
/// entry's header declared.
struct Bounded<R> {
    inner: R,
    left: u64,
    declared: u64,
    pulled: Rc<Cell<u64>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Ask for one byte more than allowed, to see whether there is one.
        let want = buf.len().min(self.left.saturating_add(1).min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want]).map_err(|e| {
            std::io::Error::other(BoundedError(ReadError::new(ReadErrorKind::Zip { message: e.to_string() })))
        })?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(BoundedError(ReadError::new(ReadErrorKind::ZipLimit {
                what: "the bytes an entry inflates to",
                value: self.declared + 1,
                limit: self.declared,
            }))));
        }
        self.left -= n as u64;
        self.pulled.set(self.pulled.get() + n as u64);
        Ok(n)
    }
}

/// Reads the end-of-central-directory record (and its zip64 form) and
/// refuses a directory with more entries than the limit, or one that does
/// not fit in the file, before the zip reader allocates anything for it.
fn check_directory(bytes: &[u8], limits: &Limits) -> Result<(), ReadError> {
    const EOCD: u32 = 0x0605_4b50;
    const LOCATOR: u32 = 0x0706_4b50;
    const EOCD64: u32 = 0x0606_4b50;
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])));
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])));
    let u64_at = |at: usize| bytes.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let bad = |message: &str| ReadError::new(ReadErrorKind::Zip { message: message.into() });
    let earliest = bytes.len().saturating_sub(22 + 65_535);
    let eocd = (earliest..bytes.len().saturating_sub(21))
        .rev()
        .find(|&at| u32_at(at) == Some(u64::from(EOCD)))
        .ok_or_else(|| bad("no end-of-central-directory record"))?;
    let mut entries = u16_at(eocd + 10).unwrap_or(0);
    let mut size = u32_at(eocd + 12).unwrap_or(0);
    let mut offset = u32_at(eocd + 16).unwrap_or(0);
    if (entries == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF)
        && eocd >= 20
        && u32_at(eocd - 20) == Some(u64::from(LOCATOR))
    {
        let at = u64_at(eocd - 12).unwrap_or(u64::MAX);
        let at = usize::try_from(at).map_err(|_| bad("the zip64 directory record is past the end"))?;
        if u32_at(at) != Some(u64::from(EOCD64)) {
            return Err(bad("no zip64 end-of-central-directory record where the locator points"));
        }
        entries = u64_at(at + 32).ok_or_else(|| bad("truncated zip64 record"))?;
        size = u64_at(at + 40).ok_or_else(|| bad("truncated zip64 record"))?;
        offset = u64_at(at + 48).ok_or_else(|| bad("truncated zip64 record"))?;
    }
    if entries > limits.max_zip_entries {
        return Err(ReadError::new(ReadErrorKind::ZipLimit {
            what: "the number of entries",
            value: entries,
            limit: limits.max_zip_entries,
        }));
    }
    if offset.saturating_add(size) > bytes.len() as u64 || entries.saturating_mul(46) > size {
        return Err(bad("the central directory does not fit in the file"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounded_reader_stops_one_byte_past_its_limit() {
        let pulled = Rc::new(Cell::new(0));
        let mut bounded = Bounded { inner: &[7u8; 200][..], left: 100, declared: 100, pulled: pulled.clone() };
        let mut out = Vec::new();
        let err = bounded.read_to_end(&mut out).unwrap_err();
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<BoundedError>()).expect("a typed error");
        assert!(matches!(inner.0.kind(), ReadErrorKind::ZipLimit { value: 101, limit: 100, .. }), "{:?}", inner.0);
        assert!(out.len() <= 100 && pulled.get() <= 100);
        let mut exact = Bounded { inner: &[7u8; 100][..], left: 100, declared: 100, pulled };
        assert_eq!(exact.read_to_end(&mut Vec::new()).unwrap(), 100);
    }

    #[test]
    fn transforms_compose_in_order() {
        let lift = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 5.0];
        let mirror_x = [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 30.0, 0.0, 0.0];
        let both = compose(&mirror_x, &lift);
        assert_eq!(apply(&both, [1.0, 2.0, 3.0]), apply(&lift, apply(&mirror_x, [1.0, 2.0, 3.0])));
        assert_eq!(apply(&both, [1.0, 2.0, 3.0]), [29.0, 2.0, 8.0]);
        assert!(mirrors(&both) && !mirrors(&lift));
    }
}
