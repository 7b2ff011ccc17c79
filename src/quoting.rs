//! Batch quoting for `farm quote`: finds the models under the given paths,
//! prices them in parallel, and shows progress on a terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

/// The STL files named by `paths`: files as given, directories searched
/// recursively for `*.stl` (any case), each directory's files in name order.
pub(crate) fn collect_models(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut models = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        if meta.is_dir() {
            let before = models.len();
            walk(path, &mut models)?;
            if models.len() == before {
                bail!("no model files (.stl, .3mf, .obj) under `{}`", path.display());
            }
        } else {
            models.push(path.clone());
        }
    }
    Ok(models)
}

/// Which files a directory walk picks up. Only the walk looks at names: the
/// format of every file is found from its bytes.
const MODEL_EXTENSIONS: [&str; 3] = ["stl", "3mf", "obj"];

fn walk(dir: &Path, models: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list `{}`", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot list `{}`", dir.display()))?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, models)?;
        } else if path.extension().is_some_and(|e| MODEL_EXTENSIONS.iter().any(|m| e.eq_ignore_ascii_case(m))) {
            models.push(path);
        }
    }
    Ok(())
}

/// Runs `price` on every model in parallel, keeping the input order. A
/// progress bar shows on stderr when it is a terminal and there is more than
/// one model; the analysis of each model is itself parallel, so the models
/// share one rayon pool rather than each taking all cores.
pub(crate) fn price_all<T, F>(models: &[PathBuf], price: F) -> Vec<anyhow::Result<T>>
where
    T: Send,
    F: Fn(&Path) -> anyhow::Result<T> + Sync,
{
    let bar = if models.len() > 1 && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(models.len() as u64);
        let style = ProgressStyle::with_template("{spinner} pricing [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar
    } else {
        ProgressBar::hidden()
    };
    let results = models
        .par_iter()
        .map(|path| {
            let result = price(path);
            bar.set_message(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            bar.inc(1);
            result
        })
        .collect();
    bar.finish_and_clear();
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_searched_for_model_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("b");
        std::fs::create_dir(&nested).unwrap();
        for name in ["z.stl", "a.STL", "notes.txt", "b/inner.stl", "c.3mf", "d.OBJ"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let loose = dir.path().join("notes.txt");
        let found = collect_models(&[dir.path().to_path_buf(), loose.clone()]).unwrap();
        let names: Vec<_> = found.iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf()).collect();
        let expected: Vec<PathBuf> =
            ["a.STL", "b/inner.stl", "c.3mf", "d.OBJ", "z.stl", "notes.txt"].iter().map(PathBuf::from).collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_missing_path_or_an_empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = collect_models(&[dir.path().join("nope.stl")]).unwrap_err();
        assert!(format!("{err:#}").contains("nope.stl"), "{err:#}");
        let err = collect_models(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(format!("{err:#}").contains("no model files"), "{err:#}");
    }

    #[test]
    fn results_keep_the_input_order() {
        let models: Vec<PathBuf> = (0..50).map(|i| PathBuf::from(format!("{i}.stl"))).collect();
        let results = price_all(&models, |p| Ok(p.to_path_buf()));
        let back: Vec<PathBuf> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(back, models);
    }
}
