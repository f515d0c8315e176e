//! `import "lib/x" as x;`: modules from the scenario's own tree, relative to the importing
//! file; anything out of the tree is a compile error at the `import` line; errors inside a
//! module say where in it they happened.

use std::os::unix::fs::symlink;

use crate::harness::{text, Dir, Test};

const GREET: &str = r#"
import "helpers" as h;
fn hello(name) { `hello ${h::up(name)}` }
fn check(name) { assert_eq(name, "bob"); }
"#;

#[test]
fn a_scenario_imports_a_module_that_imports_its_neighbour() {
    Test::new()
        .write("suite/lib/greet.rhai", GREET)
        .write("suite/lib/helpers.rhai", "fn up(s) { s.to_upper() }\n")
        .write(
            "suite/smoke/a.rhai",
            "import \"../lib/greet\" as greet;\nprint(greet::hello(\"bob\"));\n",
        )
        .write(
            "suite/b.rhai",
            "import \"lib/greet\" as greet;\nlet t = spawn(|| greet::hello(\"ann\"));\nprint(t.join());\n",
        )
        .args(&["--test"])
        .path("suite")
        .run()
        .code(0)
        .stderr_has("smoke/a.rhai: ok")
        .stderr_has("b.rhai: ok")
        .stderr_has("2 passed");
    Test::new()
        .write("suite/lib/greet.rhai", GREET)
        .write("suite/lib/helpers.rhai", "fn up(s) { s.to_upper() }\n")
        .named(
            "suite/b.rhai",
            "import \"lib/greet\" as greet;\nprint(greet::hello(\"ann\"));\n",
        )
        .run()
        .code(0)
        .stdout("hello ANN\n");
}

/// Out of the tree by `..`, by an absolute path, by a link; a file that is not there: each a
/// compile error (exit 3) at its `import` line saying why.
#[test]
fn imports_stay_inside_the_tree_given() {
    let dir = Dir::new("imports-tree");
    let tree = dir.join("tree");
    let ok = |r: std::io::Result<()>| r.unwrap_or_else(|e| panic!("{e}"));
    ok(std::fs::create_dir_all(tree.join("lib")));
    ok(std::fs::write(dir.join("outside.rhai"), "fn f() { 1 }\n"));
    ok(symlink(
        dir.join("outside.rhai"),
        tree.join("lib/link.rhai"),
    ));
    let outside = text(&dir.join("outside")).to_owned();
    let cases = [
        ("../outside", "is outside"),
        (
            outside.as_str(),
            "an import is a path relative to the importing file",
        ),
        ("lib/link", "is outside"),
        ("lib/missing", "there is no"),
    ];
    for (path, says) in cases {
        let scenario = tree.join("s.rhai");
        ok(std::fs::write(
            &scenario,
            format!("print(\"ran\");\nimport \"{path}\" as m;\n"),
        ));
        Test::new()
            .path(text(&scenario))
            .run()
            .code(3)
            .stdout("")
            .stderr_has("does not compile: cannot import")
            .stderr_has(says)
            .stderr_has("s.rhai:2:8]");
    }
}

#[test]
fn a_module_that_does_not_compile_or_imports_itself_is_a_compile_error() {
    Test::new()
        .write("lib/bad.rhai", "fn f( {\n")
        .named("s.rhai", "import \"lib/bad\" as bad;\n")
        .run()
        .code(3)
        .stderr_has("cannot import")
        .stderr_has("lib/bad.rhai:1:");
    Test::new()
        .write("lib/a.rhai", "import \"b\" as b;\n")
        .write("lib/b.rhai", "import \"a\" as a;\n")
        .named("s.rhai", "import \"lib/a\" as a;\n")
        .run()
        .code(3)
        .stderr_has("imports itself (an import cycle)");
}

/// `PORT=N` for `--var`, where nothing listens on port N: a listener bound and closed again.
fn closed_port_var() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    format!("PORT={port}")
}

/// A module's top-level code runs when its `import` runs, under the scenario's deadlines: not
/// while the scenario compiles, so `--check` runs none of it. A failure there is a run-time
/// error at the `import` (exit 4), naming the place in the module.
#[test]
fn a_module_s_top_level_code_runs_at_its_import_and_never_under_check() {
    let module =
        "print(\"module ran\");\nlet c = connect(`127.0.0.1:${var(\"PORT\")}`);\nfn f() { 1 }\n";
    let scenario = "print(\"scenario ran\");\nimport \"lib/m\" as m;\nprint(m::f());\n";
    let port = closed_port_var();
    Test::new()
        .write("lib/m.rhai", module)
        .named("s.rhai", scenario)
        .args(&["--check", "--var", &port])
        .run()
        .code(0)
        .stdout("");
    Test::new()
        .write("lib/m.rhai", module)
        .named("s.rhai", scenario)
        .args(&["--var", &port])
        .run()
        .code(4)
        .stdout("scenario ran\nmodule ran\n")
        .stderr_has("[s.rhai:2:8]")
        .stderr_has("lib/m.rhai:2:9` failed while it was imported: connect to");
}

/// An assertion or a socket error inside a module function: the diagnostic draws the place in
/// the module, headed by the module's file, then the call in the scenario.
#[test]
fn errors_inside_a_module_are_drawn_in_it_and_at_its_call() {
    let out = Test::new()
        .write("suite/lib/greet.rhai", GREET)
        .write("suite/lib/helpers.rhai", "fn up(s) { s.to_upper() }\n")
        .named(
            "suite/s.rhai",
            "import \"lib/greet\" as greet;\ngreet::check(\"bob\");\ngreet::check(\"eve\");\n",
        )
        .run();
    out.code(1)
        .stderr_has("[suite/lib/greet.rhai:4:18]")
        .stderr_has(" 4 │ fn check(name) { assert_eq(name, \"bob\"); }")
        .stderr_has("this assertion failed")
        .stderr_has("[suite/s.rhai:3:8]")
        .stderr_has("in `check`, called here");
    let err = &out.stderr;
    let (module, call) = (err.find("[suite/lib/greet.rhai"), err.find("[suite/s.rhai"));
    assert!(module < call, "the module's place comes first:\n{err}");
    let out = Test::new()
        .write("lib/net.rhai", "fn read(c) {\n    c.recv_line()\n}\n")
        .named(
            "s.rhai",
            "import \"lib/net\" as net;\nlet l = listen(\"127.0.0.1:0\");\nlet c = connect(l.addr);\nnet::read(c);\n",
        )
        .args(&["--timeout", "100ms"])
        .run();
    out.code(4)
        .stderr_has("[lib/net.rhai:2:7]")
        .stderr_has(" 2 │     c.recv_line()")
        .stderr_has("[s.rhai:4:6]")
        .stderr_has("in `read`, called here");
    assert!(!out.stderr.contains("imported module"), "{}", out.stderr);
}

/// A closure written in the scenario and run by a module's function (`lib::each(|x| …)`): rhai
/// names the module as the file of what fails inside it; the diagnostic draws the closure's
/// line in the scenario, and the module's call of the closure.
#[test]
fn a_scenario_s_closure_run_by_a_module_fails_in_the_scenario() {
    const EACH: &str = "fn pad() {\n    1\n}\nfn each(f) {\n    f.call(1)\n}\n";
    for (body, what) in [
        ("assert_eq(x, 2);", "this assertion failed"),
        ("throw \"no: \" + x;", "thrown here"),
    ] {
        let out = Test::new()
            .write("lib/each.rhai", EACH)
            .named(
                "s.rhai",
                &format!("import \"lib/each\" as lib;\nlib::each(|x| {{\n    {body}\n}});\n"),
            )
            .run();
        out.stderr_has("[s.rhai:3:5]")
            .stderr_has(&format!(" 3 │     {body}"))
            .stderr_has(what)
            .stderr_has("in `each`, called here");
        assert!(!out.stderr.contains("each.rhai:3"), "{}", out.stderr);
    }
}

/// A module the test's tasks import: it says when its top-level code runs, then takes a while.
const SLOW: &str = "print(\"slow ran\");\nsleep(300);\nfn hello() { \"hi\" }\n";

/// Two tasks import one module at once: the second waits for the first's run of the module's
/// top-level code, which runs once; neither is an import cycle.
#[test]
fn tasks_importing_one_module_at_once_share_one_run_of_it() {
    Test::new()
        .write("lib/slow.rhai", SLOW)
        .named(
            "s.rhai",
            "let a = spawn(|| { import \"lib/slow\" as s; s::hello() });\n\
             let b = spawn(|| { import \"lib/slow\" as s; s::hello() });\n\
             print(a.join());\nprint(b.join());\n",
        )
        .run()
        .code(0)
        .stdout("slow ran\nhi\nhi\n");
    // The wait for another task's run ends at the waiting task's own deadline, as a timeout it
    // may catch; the run it waited for goes on.
    Test::new()
        .write("lib/slow.rhai", SLOW)
        .named(
            "s.rhai",
            "let started = channel();\n\
             let a = spawn(|| { started.send(1); import \"lib/slow\" as s; s::hello() });\n\
             started.recv();\nsleep(50);\n\
             let e = assert_err(|| within(100, || { import \"lib/slow\" as s; }), \"timeout\");\n\
             print(e.op);\nprint(a.join());\n",
        )
        .run()
        .code(0)
        .stdout("slow ran\nimport\nhi\n");
}

/// A module whose top-level code fails is not kept: a task that waited for that run runs the
/// module itself, as any later import of it does.
#[test]
fn a_task_waiting_for_a_module_that_fails_runs_it_itself() {
    let module = "print(\"flaky ran\");\nsleep(200);\nthrow #{kind: \"flaky\", message: \"no\"};\n";
    Test::new()
        .write("lib/flaky.rhai", module)
        .named(
            "s.rhai",
            "let f = || assert_err(|| { import \"lib/flaky\" as f; }).kind;\n\
             let a = spawn(f);\nlet b = spawn(f);\n\
             let kinds = [a.join(), b.join()];\nprint(kinds);\n",
        )
        .run()
        .code(0)
        .stdout("flaky ran\nflaky ran\n[\"flaky\", \"flaky\"]\n");
}

/// An import cycle of paths computed at run time is found when the imports run, on the
/// thread that runs them, instead of waiting for itself.
#[test]
fn an_import_cycle_found_at_run_time_is_an_error() {
    Test::new()
        .write("lib/a.rhai", "let p = \"b\";\nimport p as b;\n")
        .write("lib/b.rhai", "let p = \"a\";\nimport p as a;\n")
        .named("s.rhai", "import \"lib/a\" as a;\n")
        .args(&["--max-time", "5s"])
        .run()
        .code(4)
        .stderr_has("imports itself");
}

/// Two tasks importing modules that import each other at run time, each running one of them:
/// each would wait for the other; both imports are an import cycle instead.
#[test]
fn tasks_whose_modules_import_each_other_at_run_time_do_not_wait_forever() {
    Test::new()
        .write(
            "lib/a.rhai",
            "sleep(200);\nlet p = \"b\";\nimport p as b;\n",
        )
        .write(
            "lib/b.rhai",
            "sleep(200);\nlet p = \"a\";\nimport p as a;\n",
        )
        .named(
            "s.rhai",
            "let f = |p| assert_err(|| { import p as m; }, \"invalid_argument\").message;\n\
             let a = spawn(|| f.call(\"lib/a\"));\nlet b = spawn(|| f.call(\"lib/b\"));\n\
             print(a.join());\nprint(b.join());\n",
        )
        .args(&["--max-time", "5s"])
        .run()
        .code(0)
        .stdout_has("imports itself (an import cycle");
}

/// Imports inside function bodies run only when the function is called, after the module's
/// top-level code: modules whose functions import each other, or a function importing the
/// module that imported its own, are no cycle. Such imports are still found and compiled when
/// the scenario compiles.
#[test]
fn imports_inside_functions_may_import_each_other() {
    // `a` imports `b` inside a function, or at its top level; `b` imports `a` inside one.
    for a in [
        "fn f() { import \"b\" as b; b::g() + 1 }\nfn h() { 10 }\n",
        "import \"b\" as b;\nfn f() { b::g() + 1 }\nfn h() { 10 }\n",
    ] {
        Test::new()
            .write("lib/a.rhai", a)
            .write("lib/b.rhai", "fn g() { import \"a\" as a; a::h() }\n")
            .named("s.rhai", "import \"lib/a\" as a;\nprint(a::f());\n")
            .run()
            .code(0)
            .stdout("11\n");
    }
    Test::new()
        .write("lib/a.rhai", "fn f() { import \"b\" as b; b::g() }\n")
        .write("lib/b.rhai", "fn g() { import \"missing\" as m; 1 }\n")
        .named("s.rhai", "print(\"ran\");\nimport \"lib/a\" as a;\n")
        .run()
        .code(3)
        .stdout("")
        .stderr_has("cannot import `lib/a`: cannot import `b`: cannot import `missing`")
        .stderr_has("s.rhai:2:8]");
    // A cycle of top-level imports stays one when a function's import reaches a file of it
    // first.
    Test::new()
        .write("lib/x.rhai", "import \"y\" as y;\nimport \"z\" as z;\n")
        .write("lib/y.rhai", "fn f() { import \"z\" as z; }\n")
        .write("lib/z.rhai", "import \"x\" as x;\n")
        .named("s.rhai", "import \"lib/x\" as x;\n")
        .run()
        .code(3)
        .stderr_has("cannot import `lib/x`: cannot import `z`: cannot import `x`");
}

/// A module's top-level error is raised at the `import` as the module raised it (its kind,
/// `op` and `addr`), its message saying where in the module it happened. A path that cannot
/// be imported stays `invalid_argument`.
#[test]
fn a_module_s_top_level_error_keeps_its_kind() {
    let port = closed_port_var();
    Test::new()
        .write("lib/refused.rhai", "connect(`127.0.0.1:${var(\"PORT\")}`);\n")
        .write(
            "lib/thrown.rhai",
            "fn f() { throw #{kind: \"custom\", message: \"no\"} }\nf();\n",
        )
        .named(
            "s.rhai",
            "let e = assert_err(|| { import \"lib/refused\" as r; }, \"connection_refused\");\n\
             print(e.op);\nprint(e.addr == `127.0.0.1:${var(\"PORT\")}`);\nprint(e.message);\n\
             let e = assert_err(|| { import \"lib/thrown\" as t; }, \"custom\");\nprint(e.message);\n\
             let p = \"lib/missing\";\n\
             assert_err(|| { import p as m; }, \"invalid_argument\");\n",
        )
        .args(&["--var", &port])
        .run()
        .code(0)
        .stdout_has("connect\ntrue\ncannot import `lib/refused`: `lib/refused.rhai:1:1` failed while it was imported: connect to")
        .stdout_has("\ncannot import `lib/thrown`: `lib/thrown.rhai:2:1` failed while it was imported: no\n");
}
