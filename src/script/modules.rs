//! What a scenario may `import`: the protocol modules shipped inside the binary (`std/resp`,
//! `std/http`, `std/lines`, written in rhai in `std/*.rhai`), and `.rhai` files of the tree
//! given on the command line ([`super::imports`]).
//!
//! [`Imports`] is the engine's module resolver: one `match` on the path, with the shipped
//! modules in one arm and files in the other. [`compile`] resolves every `import` of
//! a literal path while the script compiles, so a wrong path is a compile error (exit 3) at the
//! path, not a runtime error halfway through a conversation.
//!
//! The sandbox holds: a shipped module is compiled by an engine that can import nothing and
//! runs nothing but function definitions; its functions then run in the scenario's own engine,
//! under its limits, deadlines and cancellation, with the functions a scenario has and no
//! others. Each module is compiled once per process and shared (`Arc`) by every scenario and
//! task thread.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use rhai::module_resolvers::{DummyModuleResolver, ModuleResolver};
use rhai::{
    ASTNode, Dynamic, Engine, EvalAltResult, Expr, FnPtr, GlobalRuntimeState, ImmutableString,
    LexError, Module, NativeCallContext, ParseError, ParseErrorType, Position, Scope, Stmt, AST,
};

use super::error::script_error;
use super::imports::Unresolved;
use crate::net::{ErrorKind, Session};

/// The modules shipped in the binary: the path a scenario imports, and its rhai source.
const STD: [(&str, &str); 3] = [
    ("std/resp", include_str!("std/resp.rhai")),
    ("std/http", include_str!("std/http.rhai")),
    ("std/lines", include_str!("std/lines.rhai")),
];

/// The shipped modules as a sentence names them: `` `std/resp`, `std/http`, `std/lines` ``.
fn std_names() -> String {
    STD.iter()
        .map(|(path, _)| format!("`{path}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `path` names a shipped module (`source` of a function in one of them).
pub fn is_std(path: &str) -> bool {
    STD.iter().any(|(p, _)| *p == path)
}

/// The module resolver of a scenario's engine; clones share it (the engine holds one, and
/// [`compile`] checks imports with another).
#[derive(Clone)]
pub struct Imports {
    files: Arc<super::imports::Files>,
}

impl Imports {
    /// Files are imported from `root`'s tree; with none, only the shipped modules. A task
    /// that waits for another's run of a module waits under `session`'s cancellation.
    pub fn new(root: Option<super::imports::ImportRoot>, session: Arc<Session>) -> Imports {
        Imports {
            files: Arc::new(super::imports::Files::new(root, session)),
        }
    }

    /// Whether an `import` of `path` in the scenario will find its module, without running any
    /// module's code: a shipped module, or a file inside the tree that compiles, and whose own
    /// imports of literal paths pass the same check. Its top-level code runs when the `import`
    /// does, at run time.
    ///
    /// Only imports at a module's top level run when its top-level code does, so only they can
    /// form a cycle: an import inside a function runs when the function is called, when the
    /// module it is in has been imported, and only has to be found and compiled. Those wait in
    /// `later` until the chain of top-level imports that reached them is checked: the files on
    /// that chain are then the only ones being checked, and reaching one again is a cycle.
    fn check(&self, engine: &Engine, path: &str) -> Result<(), String> {
        let mut later = VecDeque::from([Later {
            importer: None,
            path: path.into(),
            trail: Vec::new(),
        }]);
        while let Some(next) = later.pop_front() {
            self.check_top_level(engine, &next, &mut later)
                .map_err(|why| {
                    next.trail
                        .iter()
                        .rev()
                        .fold(why, |why, outer| format!("cannot import `{outer}`: {why}"))
                })?;
        }
        Ok(())
    }

    /// Check `import`'s file and, before it is done, the files its top-level imports name;
    /// the imports inside its functions are put in `later`.
    fn check_top_level(
        &self,
        engine: &Engine,
        import: &Later,
        later: &mut VecDeque<Later>,
    ) -> Result<(), String> {
        let path = &import.path;
        if path.starts_with("std/") {
            return std_module(path).map(drop);
        }
        let importer = import.importer.as_deref();
        let Some((file, ast)) = self.files.check_start(engine, importer, path)? else {
            return Ok(());
        };
        let shown: ImmutableString = file.display().to_string().into();
        let mut trail = import.trail.clone();
        trail.push(path.clone());
        for nested in literal_imports(&ast) {
            let in_function = nested.in_function;
            let nested = Later {
                importer: Some(shown.clone()),
                path: nested.path,
                trail: trail.clone(),
            };
            if in_function {
                later.push_back(nested);
            } else {
                self.check_top_level(engine, &nested, later)
                    .map_err(|why| format!("cannot import `{path}`: {why}"))?;
            }
        }
        self.files.check_done(&file);
        Ok(())
    }

    /// The module at `path`, imported at `at` from `importer` (a module's file; `None` for
    /// the scenario), or why there is none.
    fn find(
        &self,
        engine: &Engine,
        importer: Option<&str>,
        path: &str,
        at: Position,
    ) -> Result<Arc<Module>, Unresolved> {
        match path.strip_prefix("std/") {
            Some(_) => std_module(path).map_err(Unresolved::Said),
            None => self.files.find(engine, importer, path, at),
        }
    }
}

/// An import [`Imports::check`] has yet to check.
struct Later {
    /// The module file it is in; `None` for the scenario.
    importer: Option<ImmutableString>,
    path: ImmutableString,
    /// The paths of the imports that led to it, from the scenario's: its errors say them.
    trail: Vec<ImmutableString>,
}

impl ModuleResolver for Imports {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Arc<Module>, Box<EvalAltResult>> {
        self.find(engine, source, path, pos)
            .map_err(|why| match why {
                Unresolved::Said(message) => {
                    let mut err = script_error(ErrorKind::InvalidArgument, "import", message);
                    err.set_position(pos);
                    err
                }
                Unresolved::Failed(map) => EvalAltResult::ErrorRuntime(map.into(), pos).into(),
                Unresolved::Stopped(stop) => stop,
            })
    }
}

/// A shipped module, compiled the first time any scenario imports it.
fn std_module(path: &str) -> Result<Arc<Module>, String> {
    static COMPILED: [OnceLock<Result<Arc<Module>, String>>; STD.len()] =
        [const { OnceLock::new() }; STD.len()];
    let Some(i) = STD.iter().position(|(p, _)| *p == path) else {
        return Err(format!(
            "there is no module `{path}`: the modules shipped with sockscript are {}",
            std_names()
        ));
    };
    COMPILED[i]
        .get_or_init(|| compile_std(STD[i].0, STD[i].1))
        .clone()
}

/// Compile a shipped module. Its top level only defines functions, so the engine that runs it
/// needs none of the scenario's; it can import nothing.
fn compile_std(path: &str, source: &str) -> Result<Arc<Module>, String> {
    let mut engine = Engine::new();
    engine.set_module_resolver(DummyModuleResolver::new());
    engine.set_strict_variables(true);
    // As a scenario's engine allows (debug builds default to less).
    engine.set_max_expr_depths(128, 64);
    // A shipped module that does not compile is a bug of this build: say so where it is used.
    let broken = |e: &dyn std::fmt::Display| format!("`{path}` is broken in this build: {e}");
    let ast = engine.compile(source).map_err(|e| broken(&e))?;
    let mut module =
        Module::eval_ast_as_new(Scope::new(), &ast, &engine).map_err(|e| broken(&e))?;
    // Errors inside the module's functions name it as their source (see [`call_site`]).
    module.set_id(path);
    Ok(Arc::new(module))
}

/// Compile a scenario and check each `import` of a literal path ([`Imports::check`]): a path
/// that would not resolve is a compile error at the path. No module's code runs here: a
/// module's top-level code runs when its `import` does. (A path computed at run time is
/// resolved when the `import` runs, with the same words.)
pub fn compile(
    engine: &Engine,
    imports: &Imports,
    scope: &Scope,
    source: &str,
) -> Result<AST, ParseError> {
    let ast = engine.compile_with_scope(scope, source)?;
    for import in literal_imports(&ast) {
        if let Err(message) = imports.check(engine, &import.path) {
            return Err(ParseError(
                Box::new(ParseErrorType::BadInput(LexError::Runtime(message))),
                import.at,
            ));
        }
    }
    Ok(ast)
}

/// An `import` of a literal path.
struct LiteralImport {
    path: ImmutableString,
    at: Position,
    /// It is inside a function or closure: it runs when that is called, not with the code
    /// around it.
    in_function: bool,
}

/// The `import`s of a literal path in `ast`: those of its top-level code in order, then those
/// inside its functions and closures.
fn literal_imports(ast: &AST) -> Vec<LiteralImport> {
    let mut found = Vec::new();
    for (part, in_function) in [
        (ast.clone_statements_only(), false),
        (ast.clone_functions_only(), true),
    ] {
        part.walk(&mut |path: &[ASTNode]| {
            if let Some(ASTNode::Stmt(Stmt::Import(import, _))) = path.last() {
                if let Expr::StringConstant(name, at) = &import.0 {
                    found.push(LiteralImport {
                        path: name.clone(),
                        at: *at,
                        in_function,
                    });
                }
            }
            true
        });
    }
    found
}

/// The modules imported where a closure was spawned, for the task that runs it: a task starts
/// with a state of its own, in which `resp::read` would name no module.
#[derive(Clone, Default)]
pub struct Imported(Vec<(ImmutableString, Arc<Module>)>);

impl Imported {
    /// The imports in effect in `global`, in the order they were made.
    pub fn of(global: &GlobalRuntimeState) -> Imported {
        Imported(
            global
                .scan_imports_raw()
                .map(|(name, module)| (name.clone(), module.clone()))
                .collect(),
        )
    }

    /// Call `closure` (of `ast`) with these imports in effect: what `FnPtr::call` does, plus them.
    pub fn call(
        &self,
        engine: &Engine,
        ast: &AST,
        closure: &FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let mut global = engine.new_global_runtime_state();
        global.lib.push(ast.shared_lib().clone());
        for (name, module) in &self.0 {
            global.push_import(name.clone(), module.clone());
        }
        let ctx = NativeCallContext::new_with_all_fields(
            engine,
            closure.fn_name(),
            None,
            &global,
            Position::NONE,
        );
        closure.call_within_context::<Dynamic>(&ctx, ())
    }
}

/// Where an error raised inside a shipped module's functions shows in the scenario: the
/// scenario's call of the module function it came up through (the outermost such call), and
/// the error as it was raised. Positions inside a shipped module mean nothing in the
/// scenario's source. `None` when the error did not come from a shipped module.
pub fn call_site(error: &EvalAltResult) -> Option<(Position, &EvalAltResult)> {
    let mut frame = error;
    while let EvalAltResult::ErrorInFunctionCall(_, source, inner, pos) = frame {
        if is_std(source) {
            return Some((*pos, inner.unwrap_inner()));
        }
        frame = inner;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Imports of a script without a file, over a session of their own (and its runtime, to
    /// keep while they are used).
    fn tree_less() -> (tokio::runtime::Runtime, Imports) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let session = Session::new(
            runtime.handle().clone(),
            std::time::Duration::from_secs(1),
            crate::net::Limits::default(),
            crate::transcript::Transcript::new(
                std::time::Instant::now(),
                crate::transcript::DEFAULT_CAPTURE,
            ),
        );
        (runtime, Imports::new(None, session))
    }

    #[test]
    fn every_shipped_module_compiles() {
        for (path, _) in STD {
            let module = std_module(path).unwrap_or_else(|e| panic!("{e}"));
            assert!(module.count().1 > 0, "{path} has no functions");
        }
    }

    #[test]
    fn a_module_is_compiled_once_and_shared() {
        let first = std_module("std/resp").unwrap_or_else(|e| panic!("{e}"));
        let again = std_module("std/resp").unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&first, &again));
    }

    #[test]
    fn an_unknown_std_path_names_the_modules_that_exist() {
        let engine = Engine::new();
        let (_runtime, imports) = tree_less();
        let err = imports
            .find(&engine, None, "std/redis", Position::NONE)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "there is no module `std/redis`: the modules shipped with sockscript are \
             `std/resp`, `std/http`, `std/lines`"
        );
    }

    /// Without a tree (a script with no file), only the shipped modules can be imported.
    #[test]
    fn without_a_tree_other_paths_are_refused() {
        let engine = Engine::new();
        let (_runtime, imports) = tree_less();
        for path in ["lib/resp", "/etc/passwd", "../x", "resp", "std"] {
            let err = imports
                .find(&engine, None, path, Position::NONE)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.starts_with(&format!("cannot import `{path}`")), "{err}");
            assert!(err.contains("no file to import relative to"), "{err}");
        }
    }

    #[test]
    fn compile_refuses_a_bad_import_at_its_path() {
        let engine = Engine::new();
        let (_runtime, imports) = tree_less();
        let source = "let x = 1;\n  import \"std/nope\" as n;\n";
        let err = compile(&engine, &imports, &Scope::new(), source)
            .err()
            .map(|e| (e.to_string(), e.position()));
        let (text, pos) = err.unwrap_or_default();
        assert!(text.contains("there is no module `std/nope`"), "{text}");
        assert_eq!((pos.line(), pos.position()), (Some(2), Some(10)));
        // Inside a function body too.
        let source = "fn f() { import \"x\" as x; }";
        assert!(compile(&engine, &imports, &Scope::new(), source).is_err());
        assert!(compile(
            &engine,
            &imports,
            &Scope::new(),
            "import \"std/lines\" as l;"
        )
        .is_ok());
    }
}
