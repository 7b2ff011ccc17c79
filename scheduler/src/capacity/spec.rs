//! The planner's small input languages: durations (`90s`, `2m`, `1.5h`,
//! `250ms`), per-lane values (`30s`, or `fast=30s,slow=10m`) and service
//! times (`150s` fixed, `2m-3m` uniform, `exp:150s` exponential).

use crate::broker::Lane;

use super::service::Shape;

/// Seconds from `90`, `90s`, `250ms`, `2m`, `1.5h`. Finite and not negative.
pub fn duration(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v * scale),
        _ => Err(format!("`{text}` is not a duration: use e.g. 90s, 250ms, 2m or 1.5h")),
    }
}

/// A value for each lane: one for both (`30s`), or per lane
/// (`fast=30s,slow=10m`; a lane left out keeps `default`).
pub fn per_lane<T: Copy>(
    text: &str,
    default: [T; 2],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<[T; 2], String> {
    if !text.contains('=') {
        let v = parse(text)?;
        return Ok([v, v]);
    }
    let mut out = default;
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lane, value) = pair.split_once('=').ok_or_else(|| format!("`{pair}`: expected LANE=VALUE"))?;
        let lane = Lane::parse(lane.trim()).ok_or_else(|| format!("`{lane}` is not a lane: use fast or slow"))?;
        out[index(lane)] = parse(value)?;
    }
    Ok(out)
}

/// The position of a lane in per-lane arrays.
pub fn index(lane: Lane) -> usize {
    match lane {
        Lane::Fast => 0,
        Lane::Slow => 1,
    }
}

/// `150s` (fixed), `2m-3m` (uniform), `exp:150s` (exponential with that mean).
pub fn shape(text: &str) -> Result<Shape, String> {
    let text = text.trim();
    if let Some(mean) = text.strip_prefix("exp:") {
        let mean = duration(mean)?;
        if mean <= 0.0 {
            return Err(format!("`{text}`: an exponential's mean must be above 0"));
        }
        return Ok(Shape::Exponential(mean));
    }
    match text.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (duration(lo)?, duration(hi)?);
            if lo > hi {
                return Err(format!("`{text}`: the range runs backwards"));
            }
            Ok(Shape::Uniform(lo, hi))
        }
        None => Ok(Shape::Fixed(duration(text)?)),
    }
}

/// One class of the model mix: `NAME=WEIGHT,LANE,SERVICE`, e.g.
/// `typical=7,fast,2m-3m`.
#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    pub name: String,
    pub weight: f64,
    pub lane: Lane,
    pub service: Shape,
}

pub fn class(text: &str) -> Result<Class, String> {
    let usage = "expected NAME=WEIGHT,LANE,SERVICE (e.g. typical=7,fast,2m-3m)";
    let (name, rest) = text.split_once('=').ok_or_else(|| format!("`{text}`: {usage}"))?;
    let parts: Vec<&str> = rest.split(',').map(str::trim).collect();
    let [weight, lane, service] = parts[..] else { return Err(format!("`{text}`: {usage}")) };
    let weight = match weight.parse::<f64>() {
        Ok(w) if w.is_finite() && w > 0.0 => w,
        _ => return Err(format!("`{text}`: the weight `{weight}` must be a positive number")),
    };
    let lane = Lane::parse(lane).ok_or_else(|| format!("`{text}`: `{lane}` is not a lane: use fast or slow"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{text}`: the class needs a name"));
    }
    Ok(Class { name: name.to_string(), weight, lane, service: shape(service)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_lanes_and_shapes_parse() {
        assert_eq!(duration("90"), Ok(90.0));
        assert_eq!(duration("250ms"), Ok(0.25));
        assert_eq!(duration("2m"), Ok(120.0));
        assert_eq!(duration("1.5h"), Ok(5400.0));
        assert!(duration("-1s").is_err() && duration("soon").is_err() && duration("inf").is_err());
        assert_eq!(per_lane("30s", [0.0, 0.0], duration), Ok([30.0, 30.0]));
        assert_eq!(per_lane("slow=10m", [5.0, 6.0], duration), Ok([5.0, 600.0]));
        assert_eq!(per_lane("fast=1s, slow=2s", [0.0, 0.0], duration), Ok([1.0, 2.0]));
        assert!(per_lane("medium=1s", [0.0, 0.0], duration).is_err());
        assert_eq!(shape("150s"), Ok(Shape::Fixed(150.0)));
        assert_eq!(shape("2m-3m"), Ok(Shape::Uniform(120.0, 180.0)));
        assert_eq!(shape("exp:1m"), Ok(Shape::Exponential(60.0)));
        assert!(shape("3m-2m").is_err() && shape("exp:0s").is_err());
        let c = class("worst=1,slow,3m-30m").unwrap();
        assert_eq!(
            (c.name.as_str(), c.weight, c.lane, c.service),
            ("worst", 1.0, Lane::Slow, Shape::Uniform(180.0, 1800.0))
        );
        for bad in ["worst", "w=0,slow,1s", "w=1,medium,1s", "w=1,slow", "=1,slow,1s", "w=x,slow,1s"] {
            assert!(class(bad).is_err(), "{bad}");
        }
    }
}
