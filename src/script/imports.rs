//! `import "lib/resp" as resp;`: modules a scenario imports from its own directory tree.
//!
//! A path is relative to the importing file (the scenario, or a module importing another) and
//! names a `.rhai` file without its extension. It must stay inside the tree the user passed on
//! the command line (the directory, or a lone file's directory): no absolute paths, no `..` out
//! of it, no links out of it (checked on the resolved path). The file is read as scenarios are
//! (a regular file, at most `--limit script` bytes).
//!
//! Imports with a literal path are checked when the scenario compiles
//! ([`super::modules::compile`]), so a bad one is a compile error at its `import` line; each module is compiled and evaluated once per
//! scenario (its top-level code runs then) and shared by every `import` of it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rhai::{Engine, Module, Scope, Shared, AST};

/// Where a scenario's imports may come from.
#[derive(Debug, Clone)]
pub struct ImportRoot {
    /// The tree imports must stay in, as given on the command line.
    pub tree: PathBuf,
    /// The scenario's own file: the base of its relative imports.
    pub file: PathBuf,
    /// The largest module file read (`--limit script`).
    pub max_size: usize,
}

/// The files a scenario imports, found and loaded once each.
pub(super) struct Files {
    root: Option<ImportRoot>,
    /// Each module by its resolved path, once evaluated; `None` while it is being evaluated,
    /// so an import cycle is found instead of recursing.
    loaded: Mutex<HashMap<PathBuf, Option<Shared<Module>>>>,
}

impl Files {
    pub(super) fn new(root: Option<ImportRoot>) -> Files {
        Files {
            root,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The file `path` names, imported from `importer` (a module's resolved path; `None` for
    /// the scenario itself).
    fn locate(&self, importer: Option<&str>, path: &str) -> Result<PathBuf, String> {
        let Some(root) = &self.root else {
            return Err(format!(
                "cannot import `{path}`: this script has no file to import relative to"
            ));
        };
        if path.is_empty() || Path::new(path).is_absolute() {
            return Err(format!(
                "cannot import `{path}`: an import is a path relative to the importing file, \
                 inside `{}`",
                root.tree.display()
            ));
        }
        let base = match importer {
            Some(module) if !module.is_empty() => PathBuf::from(module),
            _ => root.file.clone(),
        };
        let dir = base.parent().unwrap_or(Path::new("."));
        let wanted = dir.join(format!("{path}.rhai"));
        let outside = || {
            format!(
                "cannot import `{path}`: `{}` is outside `{}`, the tree given on the command \
                 line",
                wanted.display(),
                root.tree.display()
            )
        };
        let tree = std::fs::canonicalize(&root.tree)
            .map_err(|e| format!("cannot import `{path}`: `{}`: {e}", root.tree.display()))?;
        let resolved = match std::fs::canonicalize(&wanted) {
            Ok(resolved) => resolved,
            // Not there: say so, unless the path climbs out of the tree anyway.
            Err(_) if path.split('/').any(|part| part == "..") => return Err(outside()),
            Err(_) => {
                return Err(format!(
                    "cannot import `{path}`: there is no `{}`",
                    wanted.display()
                ))
            }
        };
        match resolved.strip_prefix(&tree) {
            // Named as the user named the tree, so diagnostics show a path they recognise.
            Ok(inside) if root.tree == Path::new(".") => Ok(inside.to_owned()),
            Ok(inside) => Ok(root.tree.join(inside)),
            Err(_) => Err(outside()),
        }
    }

    /// Compile and evaluate the module at `file`, or take it from the cache.
    fn load(&self, engine: &Engine, file: &Path) -> Result<Shared<Module>, String> {
        let shown = file.display().to_string();
        {
            let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            match loaded.get(file) {
                Some(Some(module)) => return Ok(module.clone()),
                Some(None) => return Err(format!("`{shown}` imports itself (an import cycle)")),
                None => {}
            }
        }
        self.lock().insert(file.to_owned(), None);
        let result = self.compile(engine, file).and_then(|ast| {
            Module::eval_ast_as_new(Scope::new(), &ast, engine)
                .map(Shared::new)
                .map_err(|e| format!("`{shown}` failed while it was imported: {e}"))
        });
        let mut loaded = self.lock();
        match &result {
            Ok(module) => loaded.insert(file.to_owned(), Some(module.clone())),
            Err(_) => loaded.remove(file),
        };
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Option<Shared<Module>>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn compile(&self, engine: &Engine, file: &Path) -> Result<AST, String> {
        let shown = file.display().to_string();
        let max_size = self.root.as_ref().map_or(0, |r| r.max_size);
        let bytes = crate::scenario::read_regular(file, max_size).map_err(|e| e.to_string())?;
        let text = String::from_utf8(bytes).map_err(|_| format!("`{shown}` is not UTF-8 text"))?;
        let mut ast = engine.compile(&text).map_err(|e| {
            let (line, column) = (e.position().line(), e.position().position());
            match (line, column) {
                (Some(l), Some(c)) => {
                    format!("`{shown}:{l}:{c}` does not compile: {}", e.err_type())
                }
                _ => format!("`{shown}` does not compile: {}", e.err_type()),
            }
        })?;
        // Its functions name their file in errors and resolve their own imports from it.
        ast.set_source(shown);
        Ok(ast)
    }
}

impl Files {
    /// The module `path` names, imported from `importer`: found, then loaded (or cached).
    pub(super) fn find(
        &self,
        engine: &Engine,
        importer: Option<&str>,
        path: &str,
    ) -> Result<Shared<Module>, String> {
        let file = self.locate(importer, path)?;
        self.load(engine, &file)
            .map_err(|why| format!("cannot import `{path}`: {why}"))
    }
}
