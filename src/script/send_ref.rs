//! `conn.send(data)` without a copy of the Blob in `data`.
//!
//! rhai (1.27.0) evaluates a method call's arguments by value: reading the variable `data`
//! clones it (`Target::take_or_clone`, `eval/expr.rs`) before any function is chosen, so no way
//! of registering `send` avoids a 64 KiB copy per call in a bulk send. [`rewrite`] changes the
//! compiled script instead: each `x.send(v)` whose receiver and argument are plain variables,
//! standing as a statement, as a `let` value, as the value assigned or returned, or as a
//! `switch` arm, becomes a custom-syntax node ([`KEY`]) that keeps the original expression.
//! When the node runs, [`eval`] looks at the two variables: a `Conn` and a Blob, neither of them
//! shared, are sent from where the Blob lies, doing what rhai's own call would have done around
//! it: the same operations counted at the same positions (`--limit operations`, cancellation
//! and `within` checks), the variable hook's schedule of looks (`engine.rs`), the call's
//! position in the transcript and on its errors. Anything else (a Udp, a Channel, a map with a
//! `send` closure, a string, a captured variable) evaluates the original expression, as before.
//!
//! What is left as it was: the bodies of script functions and closures, so also `spawn`'s.
//! rhai 1.27.0 does not export the type of a function's body (`ScriptFuncPayload`: `mod func`
//! is private in `lib.rs` and only `ScriptFuncDef` is re-exported), so a rewritten body cannot be
//! put back into the AST. A script that defines a function named `send` is left alone whole
//! (such a function would take the call).

use rhai::{
    ASTFlags, CustomExpr, Dynamic, DynamicReadLock, Engine, EvalAltResult, EvalContext, Expr,
    Expression, Position, Scope, Stmt, StmtBlock, AST,
};

use super::context::call_at;
use super::engine::count_flat_read;
use super::error::ScriptResult;
use crate::net::Conn;

/// The custom-syntax key of a rewritten call. It holds spaces, so it is never one token of a
/// script: no script can write this node, only [`rewrite`] makes it.
pub const KEY: &str = "send a Blob variable in place";

/// The method rewritten.
const SEND: &str = "send";

/// Teach `engine` to run the nodes [`rewrite`] makes (an engine without this fails them with
/// "Invalid custom syntax prefix"). `progress` is the engine's progress hook (`engine.rs`),
/// called for the operations a node counts itself.
pub fn register(
    engine: &mut Engine,
    progress: impl Fn() -> Option<Dynamic> + Send + Sync + 'static,
) {
    let handler = move |ctx: &mut EvalContext, inputs: &[Expression], _: &Dynamic| {
        eval(ctx, inputs, &progress)
    };
    if let Err(e) = engine.register_custom_syntax_handler(KEY, false, handler) {
        // Fails only in rhai builds without an AST interpreter (`no_ast`), never this one.
        unreachable!("send_ref: {e}");
    }
}

/// `ast` with its main statements' `x.send(v)` calls rewritten (see the module doc). An AST
/// with nothing to rewrite is returned as it is.
pub fn rewrite(ast: AST) -> AST {
    if ast.iter_functions().any(|f| f.name == SEND) {
        return ast;
    }
    let mut statements = ast.statements().to_vec();
    let mut changed = false;
    for s in &mut statements {
        changed |= stmt(s);
    }
    if !changed {
        return ast;
    }
    let mut rewritten = AST::new(statements, ast.shared_lib().clone());
    if let Some(source) = ast.source() {
        rewritten.set_source(source);
    }
    rewritten
}

/// Rewrite the calls in `s` and in the blocks it holds; whether any was.
fn stmt(s: &mut Stmt) -> bool {
    match s {
        Stmt::Expr(e) => value(e),
        Stmt::Var(x, ..) => value(&mut x.1),
        Stmt::Assignment(x) => value(&mut x.1.rhs),
        Stmt::Return(Some(e), ..) => value(e),
        Stmt::Block(b) => block(b),
        Stmt::If(x, ..) | Stmt::While(x, ..) | Stmt::Do(x, ..) | Stmt::TryCatch(x, ..) => {
            block(&mut x.body) | block(&mut x.branch)
        }
        Stmt::For(x, ..) => block(&mut x.2.body),
        Stmt::Switch(x, ..) => {
            x.1.expressions
                .iter_mut()
                .fold(false, |changed, arm| value(&mut arm.rhs) | changed)
        }
        // Anything else, including kinds a later rhai adds, stays as it is.
        _ => false,
    }
}

fn block(b: &mut StmtBlock) -> bool {
    b.statements_mut()
        .iter_mut()
        .fold(false, |changed, s| stmt(s) | changed)
}

/// Rewrite `e` where rhai only evaluates it for its value: nothing reads such an expression's
/// shape or its start position (as `for x in e` and the arguments of `Fn`, `eval` or `curry`
/// do for errors), so the node evaluates exactly as `e` did.
fn value(e: &mut Expr) -> bool {
    if let Expr::Stmt(b) = e {
        return block(b);
    }
    if Call::of(e).is_none() {
        return false;
    }
    let pos = e.position();
    let original = std::mem::take(e);
    *e = Expr::Custom(
        Box::new(CustomExpr {
            inputs: std::iter::once(original).collect(),
            tokens: std::iter::once(KEY.into()).collect(),
            state: Dynamic::UNIT,
            scope_may_be_changed: false,
            self_terminated: false,
        }),
        pos,
    );
    true
}

/// The parts of `x.send(v)`, both plain variables (not `this`, not `module::name`).
struct Call<'a> {
    receiver: &'a Expr,
    data: &'a Expr,
    /// Where the method call is: rhai's `NativeCallContext::call_position` for it.
    at: Position,
}

impl<'a> Call<'a> {
    fn of(e: &'a Expr) -> Option<Call<'a>> {
        let Expr::Dot(x, flags, _) = e else {
            return None;
        };
        let Expr::MethodCall(method, at) = &x.rhs else {
            return None;
        };
        let plain = |e: &Expr| matches!(e, Expr::Variable(v, ..) if v.2.is_empty());
        let [data] = method.args.as_slice() else {
            return None;
        };
        let fits = *flags == ASTFlags::NONE
            && method.name == SEND
            && !method.is_qualified()
            && !method.capture_parent_scope
            && plain(&x.lhs)
            && plain(data);
        fits.then_some(Call {
            receiver: &x.lhs,
            data,
            at: *at,
        })
    }
}

/// Run a rewritten `x.send(v)` (`inputs[0]` is the original expression).
fn eval(
    ctx: &mut EvalContext,
    inputs: &[Expression],
    progress: &dyn Fn() -> Option<Dynamic>,
) -> ScriptResult<Dynamic> {
    let original = &inputs[0];
    let Some(call) = Call::of(original) else {
        return as_written(ctx, original);
    };
    // Four operations: the method call's arguments, reading `v`, reading `x`, calling `send`.
    if !room_for(ctx, 4) {
        return send_counted_one_by_one(ctx, &call, original);
    }
    // None of the four can reach the limit: the variables are found once, the progress hook
    // runs once, as rhai runs it for the last of them (it looks only at the session, not at
    // the count), and the count is added after the call.
    let sent = {
        let scope = ctx.scope();
        let conn = variable(scope, call.receiver).and_then(conn_of);
        let data = variable(scope, call.data).and_then(blob_of);
        match (conn, data) {
            (Some(conn), Some(data)) => Some(match progress() {
                Some(token) => Err(EvalAltResult::ErrorTerminated(token, call.at).into()),
                None => {
                    count_flat_read();
                    count_flat_read();
                    send(&call, &conn, &data)
                }
            }),
            _ => None,
        }
    };
    match sent {
        Some(result) => {
            ctx.global_runtime_state_mut().num_operations += 4;
            result
        }
        None => as_written(ctx, original),
    }
}

/// The call near `--limit operations`: each operation counted at its own position, as rhai
/// does, in its order; any of them may be the one that fails.
fn send_counted_one_by_one(
    ctx: &mut EvalContext,
    call: &Call,
    original: &Expression,
) -> ScriptResult<Dynamic> {
    let fits = {
        let scope = ctx.scope();
        variable(scope, call.receiver).and_then(conn_of).is_some()
            && variable(scope, call.data).and_then(blob_of).is_some()
    };
    if !fits {
        return as_written(ctx, original);
    }
    count_operation(ctx, call.at)?; // the method call's arguments
    count_operation(ctx, call.data.position())?; // reading `v`
    count_flat_read();
    count_operation(ctx, call.receiver.position())?; // reading `x`
    count_flat_read();
    count_operation(ctx, call.at)?; // calling `send`
    let scope = ctx.scope();
    // The scope is as it was when the variables were found: counting runs only the progress
    // hook.
    let conn = variable(scope, call.receiver).and_then(conn_of);
    let data = variable(scope, call.data).and_then(blob_of);
    let (Some(conn), Some(data)) = (conn, data) else {
        unreachable!("send_ref: the variables of `{SEND}` changed while it was counted");
    };
    send(call, &conn, &data)
}

/// A variable that can be sent in place: a `Conn`, not shared.
fn conn_of(v: &Dynamic) -> Option<DynamicReadLock<'_, Conn>> {
    (!v.is_shared()).then(|| v.read_lock::<Conn>()).flatten()
}

/// A variable that can be sent in place: a Blob, not shared.
fn blob_of(v: &Dynamic) -> Option<DynamicReadLock<'_, rhai::Blob>> {
    (!v.is_shared())
        .then(|| v.read_lock::<rhai::Blob>())
        .flatten()
}

/// Evaluate the original expression: anything that is not a `Conn` and a Blob.
fn as_written(ctx: &mut EvalContext, original: &Expression) -> ScriptResult<Dynamic> {
    // rhai counted an operation for this node at the original's position; evaluating the
    // original counts it again.
    uncount_operation(ctx);
    ctx.eval_expression_tree(original)
}

/// The call itself, with the Blob read where it lies.
fn send(call: &Call, conn: &Conn, data: &[u8]) -> ScriptResult<Dynamic> {
    super::net::send_bytes(conn, &call_at(call.at), data)
        .map(Dynamic::from)
        .map_err(|mut e| {
            // What rhai does with a native function's error.
            if e.position().is_none() {
                e.set_position(call.at);
            }
            e
        })
}

/// Count one operation at `pos`, as rhai does when it evaluates an expression there: the
/// operation limit and the progress hook (cancellation, `within`, output limit).
fn count_operation(ctx: &mut EvalContext, pos: Position) -> ScriptResult<()> {
    ctx.eval_expression_tree(&Expression::from(&Expr::Unit(pos)))
        .map(drop)
}

/// Whether `n` more operations stay within `--limit operations` (rhai fails the one that
/// takes the count past it).
fn room_for(ctx: &EvalContext, n: u64) -> bool {
    let max = ctx.engine().max_operations();
    max == 0
        || ctx
            .global_runtime_state()
            .num_operations
            .checked_add(n)
            .is_some_and(|total| total <= max)
}

fn uncount_operation(ctx: &mut EvalContext) {
    let global = ctx.global_runtime_state_mut();
    global.num_operations = global.num_operations.saturating_sub(1);
}

/// The variable `var` names: the last of that name in `scope`. That is where rhai looks when it
/// searches the scope, and where a variable's resolved index points in a script's main
/// statements, whose scope grows and shrinks with the parser's stack of names (`eval`, which
/// could add names the parser did not see, makes rhai search instead). Looking up by name
/// costs a few short string comparisons; rhai offers no public look-up by index.
fn variable<'s>(scope: &'s Scope, var: &Expr) -> Option<&'s Dynamic> {
    let Expr::Variable(v, ..) = var else {
        return None;
    };
    scope.get(v.1.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::ASTNode;

    /// How many `x.send(v)` calls in `script` are rewritten, and how many `send` method calls
    /// remain as they were (function bodies included).
    fn counts(script: &str) -> (usize, usize) {
        let mut engine = Engine::new();
        register(&mut engine, || None);
        let ast = engine.compile(script).expect("test script compiles");
        let ast = rewrite(ast);
        let (mut rewritten, mut kept) = (0, 0);
        ast.walk(&mut |path| {
            match path.last() {
                Some(ASTNode::Expr(Expr::Custom(c, _))) if c.tokens[0].as_str() == KEY => {
                    rewritten += 1
                }
                Some(ASTNode::Expr(Expr::MethodCall(m, _))) if m.name == SEND => kept += 1,
                _ => (),
            }
            true
        });
        // The original stays inside each node.
        (rewritten, kept - rewritten)
    }

    const LET: &str = "let c = 1; let data = 2; let m = #{}; let n = 0;\n";

    #[test]
    fn calls_whose_value_is_all_that_is_used_are_rewritten() {
        for body in [
            "c.send(data);",
            "let k = c.send(data);",
            "n = c.send(data);",
            "n += c.send(data);",
            "for i in 0..3 { c.send(data); }",
            "while n < 3 { n += 1; c.send(data); }",
            "do { c.send(data); } until true;",
            "loop { c.send(data); break; }",
            "if n == 0 { c.send(data); } else { c.send(data); }",
            "{ { c.send(data); } }",
            "try { c.send(data); } catch (e) { c.send(data); }",
            "switch n { 0 => c.send(data), _ => { c.send(data); } }",
            "let k = if n == 0 { c.send(data) } else { 0 };",
            "return c.send(data);",
        ] {
            let arms = body.matches("c.send(data)").count();
            assert_eq!(counts(&format!("{LET}{body}")), (arms, 0), "{body}");
        }
    }

    #[test]
    fn other_shapes_are_left_as_they_are() {
        for body in [
            "c.send(data + 1);",
            "c.send(\"text\");",
            "c.send(m.data);",
            "m.c.send(data);",
            "c.send(data, 1);",
            "c.send();",
            "c.recv(data);",
            "c.send(data).to_string();",
            "c?.send(data);",
            "print(c.send(data));",
            "let k = [c.send(data)];",
            "for x in c.send(data) {}",
            "if c.send(data) > 0 {}",
            "let k = c.send(data) + 1;",
        ] {
            let (rewritten, _) = counts(&format!("{LET}{body}"));
            assert_eq!(rewritten, 0, "{body}");
        }
    }

    #[test]
    fn function_and_closure_bodies_are_left_as_they_are() {
        let script = format!(
            "{LET}fn f(c, data) {{ c.send(data); }}\nlet g = |x| c.send(data);\nc.send(data);"
        );
        assert_eq!(counts(&script), (1, 2));
    }

    #[test]
    fn a_script_with_its_own_send_is_left_whole() {
        for own in [
            "fn send(x) { x }",
            "fn send(a, b, c) {}",
            "fn Conn.send(x) { x }",
        ] {
            let script = format!("{LET}{own}\nc.send(data);");
            assert_eq!(counts(&script), (0, 1), "{own}");
        }
    }

    #[test]
    fn the_node_has_the_position_of_the_call_it_replaces() {
        let mut engine = Engine::new();
        register(&mut engine, || None);
        let before = engine
            .compile(format!("{LET}c.send(data);"))
            .expect("compiles");
        let after = rewrite(before.clone());
        let position = |ast: &AST| match ast.statements().last() {
            Some(Stmt::Expr(e)) => e.position(),
            other => panic!("not an expression statement: {other:?}"),
        };
        assert_eq!(position(&before), position(&after));
    }

    /// The README's function reference is checked against the engine's function metadata
    /// (`script::tests`): the in-place send adds a custom-syntax handler and no function, so
    /// there is nothing there to document or to leave out.
    #[test]
    fn it_registers_no_function() {
        let plain = Engine::new().gen_fn_signatures(true);
        let mut engine = Engine::new();
        register(&mut engine, || None);
        assert_eq!(engine.gen_fn_signatures(true), plain);
    }

    #[test]
    fn the_key_cannot_be_written_in_a_script() {
        let mut engine = Engine::new();
        register(&mut engine, || None);
        let written = format!("{LET}{KEY} c.send(data);");
        assert!(engine.compile(written).is_err());
        assert!(engine
            .compile(format!("let {} = 1;", KEY.replace(' ', "_")))
            .is_ok());
    }
}
