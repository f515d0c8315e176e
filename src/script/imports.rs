//! `import "lib/resp" as resp;`: modules a scenario imports from its own directory tree.
//!
//! A path is relative to the importing file (the scenario, or a module importing another) and
//! names a `.rhai` file without its extension. It must stay inside the tree the user passed on
//! the command line (the directory, or a lone file's directory): no absolute paths, no `..` out
//! of it, no links out of it (checked on the resolved path). The file is read as scenarios are
//! (a regular file, at most `--limit script` bytes).
//!
//! Imports with a literal path are checked when the scenario compiles
//! ([`super::modules::compile`]: found and compiled, not run), so a bad one is a compile error
//! at its `import` line; so is a cycle of imports at modules' top level, whose code would
//! import itself (an import inside a function runs only when the function is called). Each
//! module is evaluated once per scenario, when an `import` of it first runs (its top-level
//! code runs then, under the scenario's deadlines), and shared by every `import` of it: an
//! `import` on another task's thread meanwhile waits for that run, under its own deadlines.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use rhai::{Engine, EvalAltResult, Map, Module, Position, Scope, Shared, AST};
use tokio::sync::watch;

use crate::net::{Session, NO_DEADLINE};

/// Where a scenario's imports may come from.
#[derive(Debug, Clone)]
pub struct ImportRoot {
    /// The tree imports must stay in, as given on the command line.
    pub tree: PathBuf,
    /// The scenario's own file: the base of its relative imports.
    pub file: PathBuf,
    /// The largest module file read (`--limit script`).
    pub max_size: usize,
    /// Where the text of each module read is kept, for diagnostics to draw.
    pub sources: ModuleSources,
}

/// The text of each module a scenario read, by the name its errors give the module's file
/// (as the user named the tree: `lib/net.rhai`), so a failure inside a module is drawn where
/// it happened. Shared by the engine that reads the modules and the outcome that describes
/// the failure.
#[derive(Debug, Clone, Default)]
pub struct ModuleSources(Arc<Mutex<HashMap<String, Read>>>);

/// One module file as the scenario read it.
#[derive(Debug)]
struct Read {
    text: Arc<str>,
    /// The names rhai gives the closures written in it (`anon$…`).
    closures: Vec<String>,
}

impl ModuleSources {
    /// The text of the module file errors name `name`, when the scenario read it.
    pub fn get(&self, name: &str) -> Option<Arc<str>> {
        self.lock().get(name).map(|read| read.text.clone())
    }

    /// The file a function named `function` was written in, as the error that names it as
    /// `said` should have said it: rhai names a closure after the module whose code called it,
    /// even when the closure was written in the scenario (`lib::each(|x| …)`). A closure no
    /// module read has was written in the scenario (`""`).
    pub fn file_of(&self, function: &str, said: &str) -> String {
        if said.is_empty() || !function.starts_with("anon$") {
            return said.to_owned();
        }
        let read = self.lock();
        let has = |file: &str| {
            read.get(file)
                .is_some_and(|r| r.closures.iter().any(|c| c == function))
        };
        if !read.contains_key(said) || has(said) {
            return said.to_owned();
        }
        read.keys()
            .find(|file| has(file))
            .cloned()
            .unwrap_or_default()
    }

    /// Keep `text` as `name`'s: the latest read is the one that runs (a module is read when
    /// the scenario compiles, then again when its `import` runs).
    fn insert(&self, name: String, text: &str, ast: &AST) {
        let closures = ast
            .iter_functions()
            .filter(|f| f.name.starts_with("anon$"))
            .map(|f| f.name.to_owned())
            .collect();
        let text = text.into();
        self.lock().insert(name, Read { text, closures });
    }

    /// `text` as the module `name`, for tests of what diagnostics draw.
    #[cfg(test)]
    pub(crate) fn insert_for_test(&self, name: &str, text: &str) {
        let read = Read {
            text: text.into(),
            closures: Vec::new(),
        };
        self.lock().insert(name.to_owned(), read);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Read>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The files a scenario imports, found and loaded once each.
pub(super) struct Files {
    root: Option<ImportRoot>,
    /// The scenario's: a wait for another task's run of a module ends when the scenario is
    /// stopped, or at the waiting task's `within`.
    session: Arc<Session>,
    /// The modules run so far, and those running.
    loads: Mutex<Loads>,
    /// The files checked while the scenario compiled: `true` once done, `false` while the
    /// files their top-level imports name are being checked (so a cycle of those is found).
    checked: Mutex<HashMap<PathBuf, bool>>,
}

impl Files {
    pub(super) fn new(root: Option<ImportRoot>, session: Arc<Session>) -> Files {
        Files {
            root,
            session,
            loads: Mutex::new(Loads::default()),
            checked: Mutex::new(HashMap::new()),
        }
    }

    /// The first step of checking an import of `path` from `importer` while the scenario
    /// compiles (`modules::Imports::check`): the file is found inside the tree and compiled,
    /// not run. Its file and AST, for its own imports to be checked, then
    /// [`Files::check_done`]; `None` when it was checked already.
    pub(super) fn check_start(
        &self,
        engine: &Engine,
        importer: Option<&str>,
        path: &str,
    ) -> Result<Option<(PathBuf, AST)>, String> {
        let file = self.locate(importer, path)?;
        {
            let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            match checked.get(&file) {
                Some(true) => return Ok(None),
                Some(false) => {
                    return Err(format!(
                        "cannot import `{path}`: `{}` imports itself (an import cycle)",
                        file.display()
                    ))
                }
                None => checked.insert(file.clone(), false),
            };
        }
        let ast = self
            .compile(engine, &file)
            .map_err(|why| format!("cannot import `{path}`: {why}"))?;
        Ok(Some((file, ast)))
    }

    /// `file` and its imports passed the check.
    pub(super) fn check_done(&self, file: &Path) {
        let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        checked.insert(file.to_owned(), true);
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

    /// The module at `file`, imported at `at`: from the cache; else compiled and evaluated on
    /// this thread, while imports of it on other threads wait for that run instead of starting
    /// their own. A module whose top-level code failed is not kept: the next import of it runs
    /// it again, and so does each import that waited for the run that failed. An import of a
    /// module whose top-level code this thread is running (directly, or through threads that
    /// wait for one another's) is an import cycle.
    fn load(
        &self,
        engine: &Engine,
        file: &Path,
        at: Position,
    ) -> Result<Shared<Module>, Unresolved> {
        let shown = file.display().to_string();
        let me = std::thread::current().id();
        let mut loads = loop {
            let mut loads = self.lock();
            let (task, mut done) = match loads.modules.get(file) {
                Some(Load::Loaded(module)) => return Ok(module.clone()),
                Some(Load::Running { task, done, .. }) => (task.clone(), done.clone()),
                None => break loads,
            };
            if let Some(running) = loads.cycle(file, me) {
                return Err(Unresolved::Said(if running == file {
                    format!("`{shown}` imports itself (an import cycle)")
                } else {
                    format!(
                        "`{}` imports itself (an import cycle, through `{task}`'s import of \
                         `{shown}`)",
                        running.display()
                    )
                }));
            }
            loads.waiting.insert(me, file.to_owned());
            drop(loads);
            // The run ends by dropping its sender, whether it failed or not.
            let waited = self.session.block_on(
                &super::context::call_at(at),
                "import",
                None,
                Some(NO_DEADLINE),
                async {
                    let _ = done.changed().await;
                    Ok(())
                },
            );
            self.lock().waiting.remove(&me);
            if let Err(e) = waited {
                return Err(waited_for(&shown, &task, super::error::raise(e)));
            }
        };
        let (ended, done) = watch::channel(());
        let task = super::context::task();
        let running = Load::Running {
            thread: me,
            task,
            done,
        };
        loads.modules.insert(file.to_owned(), running);
        drop(loads);
        let run = Run {
            files: self,
            file,
            _ended: ended,
        };
        let result = self
            .compile(engine, file)
            .map_err(Unresolved::Said)
            .and_then(|ast| {
                Module::eval_ast_as_new(Scope::new(), &ast, engine)
                    .map(Shared::new)
                    .map_err(|e| failed_while_imported(&shown, e))
            });
        if let Ok(module) = &result {
            let loaded = Load::Loaded(module.clone());
            self.lock().modules.insert(file.to_owned(), loaded);
        }
        drop(run);
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loads> {
        self.loads.lock().unwrap_or_else(|p| p.into_inner())
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
        if let Some(root) = &self.root {
            root.sources.insert(shown.clone(), &text, &ast);
        }
        // Its functions name their file in errors and resolve their own imports from it.
        ast.set_source(shown);
        Ok(ast)
    }
}

impl Files {
    /// The module `path` names, imported from `importer` at `at`: found, then loaded (or
    /// cached).
    pub(super) fn find(
        &self,
        engine: &Engine,
        importer: Option<&str>,
        path: &str,
        at: Position,
    ) -> Result<Shared<Module>, Unresolved> {
        let file = self.locate(importer, path).map_err(Unresolved::Said)?;
        self.load(engine, &file, at)
            .map_err(|why| why.importing(path))
    }
}

/// The modules of a scenario by their resolved paths, as its imports ran them.
#[derive(Default)]
struct Loads {
    modules: HashMap<PathBuf, Load>,
    /// The module each thread waits for while another thread runs its top-level code.
    waiting: HashMap<ThreadId, PathBuf>,
}

/// One module file, as its imports ran it.
enum Load {
    /// Its top-level code is running on `thread`, the task `task`; `done` changes (its sender
    /// is dropped) when that run ends, whether it failed or not.
    Running {
        thread: ThreadId,
        task: Arc<str>,
        done: watch::Receiver<()>,
    },
    /// Its top-level code ran: the module every import of it shares.
    Loaded(Shared<Module>),
}

impl Loads {
    /// The module whose top-level code the thread `me` runs that a wait for `file` would wait
    /// for: `file` itself, or one that the thread running `file` waits for, and so on. `None`
    /// when the wait would end.
    fn cycle<'a>(&'a self, file: &'a Path, me: ThreadId) -> Option<&'a Path> {
        let mut at = file;
        // Each thread waits for one module at most: a longer walk is a cycle without `me`,
        // which its own threads found.
        for _ in 0..=self.waiting.len() {
            let Some(Load::Running { thread, .. }) = self.modules.get(at) else {
                return None;
            };
            if *thread == me {
                return Some(at);
            }
            at = self.waiting.get(thread)?;
        }
        None
    }
}

/// A run of a module's top-level code on this thread. Dropped, it takes the module's entry
/// back unless the run left the module there, then lets the threads waiting for it go (by
/// dropping `_ended`), also when the run panicked.
struct Run<'a> {
    files: &'a Files,
    file: &'a Path,
    _ended: watch::Sender<()>,
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        let mut loads = self.files.lock();
        if matches!(loads.modules.get(self.file), Some(Load::Running { .. })) {
            loads.modules.remove(self.file);
        }
    }
}

/// Why an `import` found no module.
pub(super) enum Unresolved {
    /// A path refused, a file that does not compile, an import cycle: a sentence, raised as
    /// kind `invalid_argument` at the `import`.
    Said(String),
    /// The module's top-level code raised this catchable error: its map as the module raised
    /// it (kind, `op`, `addr`, …), with a message that names the place in the module.
    Failed(Map),
    /// The scenario was stopped while a module's top-level code ran (cancelled, `--max-time`,
    /// an expired `within`, a limit): that stop itself, which no `try` catches.
    Stopped(Box<EvalAltResult>),
}

impl Unresolved {
    /// The same reason, its sentence headed by `` cannot import `path`: ``.
    fn importing(self, path: &str) -> Unresolved {
        let head = |why: &str| format!("cannot import `{path}`: {why}");
        match self {
            Unresolved::Said(why) => Unresolved::Said(head(&why)),
            Unresolved::Failed(mut map) => {
                let why = map.get("message").map(ToString::to_string);
                map.insert("message".into(), head(&why.unwrap_or_default()).into());
                Unresolved::Failed(map)
            }
            stopped @ Unresolved::Stopped(_) => stopped,
        }
    }
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unresolved::Said(why) => f.write_str(why),
            Unresolved::Failed(map) => match map.get("message") {
                Some(message) => write!(f, "{message}"),
                None => f.write_str("failed"),
            },
            Unresolved::Stopped(e) => write!(f, "{e}"),
        }
    }
}

/// The wait for `task`'s run of the module `shown` ended with `e` instead: the stop, or the
/// waiting task's deadline (a catchable `timeout`).
fn waited_for(shown: &str, task: &str, e: Box<EvalAltResult>) -> Unresolved {
    if matches!(e.unwrap_inner(), EvalAltResult::ErrorTerminated(..)) {
        return Unresolved::Stopped(e);
    }
    let mut map = super::error::catchable_map(&e);
    let message = map.get("message").map(ToString::to_string);
    let message = format!(
        "waited for `{task}` to import `{shown}`: {}",
        message.unwrap_or_default()
    );
    map.insert("message".into(), message.into());
    Unresolved::Failed(map)
}

/// A module's top-level code failed with `e`: the error as the module raised it, its message
/// headed by the place in the module; or the stop that ended it.
fn failed_while_imported(shown: &str, e: Box<EvalAltResult>) -> Unresolved {
    if matches!(e.unwrap_inner(), EvalAltResult::ErrorTerminated(..)) {
        return Unresolved::Stopped(e);
    }
    let mut map = super::error::catchable_map(&e);
    let message = map
        .get("message")
        .map_or_else(|| e.to_string(), ToString::to_string);
    let at = e.position();
    let message = match (at.line(), at.position()) {
        (Some(l), Some(c)) => format!("`{shown}:{l}:{c}` failed while it was imported: {message}"),
        _ => format!("`{shown}` failed while it was imported: {message}"),
    };
    map.insert("message".into(), message.into());
    Unresolved::Failed(map)
}
