//! An endpoint's content filter: a CEL expression over the event, compiled when the endpoint
//! is written and evaluated by the router for each event its type patterns already matched.
//!
//! The expression sees five variables: `payload` (the payload parsed as JSON, or `null` when
//! it is not JSON), `type`, `tenant`, `id` (strings) and `attributes` (a map of string to
//! string). JSON integers become CEL `int` (or `uint` above `i64::MAX`), other numbers
//! `double`. Example: `type == "order.created" && payload.amount >= 100 &&
//! attributes.region == "eu"`.
//!
//! [`Filter::compile`] refuses, with the line and column of the problem (for a 422):
//! a syntax error, an identifier that is none of the five variables (nor a variable bound
//! by a macro such as `exists(x, ...)`, nor a CEL type name), a literal that is not a
//! boolean, and an expression over the static limits below.
//!
//! Cost limit: the `cel` crate (0.15) has no evaluation cost budget (no cost estimate, no
//! step counter, no interruption). The cost is therefore bounded statically, on the parsed
//! (macro-expanded) syntax tree: at most [`MAX_SOURCE_BYTES`] of source, [`MAX_NODES`]
//! nodes, [`MAX_DEPTH`] levels, and [`MAX_COMPREHENSIONS`] comprehensions (`all`, `exists`,
//! `exists_one`, `map`, `filter`), none inside another. Without nesting, evaluation takes
//! time linear in the size of the expression times the size of the event, except for
//! string functions called on payload strings inside a comprehension (`contains`,
//! `matches`, ...), which can make it quadratic in the payload size: the payload size limit
//! of the router (`router.max_payload_bytes`) is the remaining bound.
//!
//! [`Filter::eval`] never panics and never fails: a runtime error (a missing field, a wrong
//! type, a result that is not a boolean) is [`FilterOutcome::Error`], which does not match.
//! Its [`EvalError`] has a bounded [`EvalErrorKind`] for a metric label and a message that
//! never quotes values from the payload.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program, Value};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// Longest accepted expression, in bytes.
pub const MAX_SOURCE_BYTES: usize = 4096;
/// Most nodes in the macro-expanded syntax tree.
pub const MAX_NODES: usize = 400;
/// Deepest nesting of the syntax tree.
pub const MAX_DEPTH: usize = 32;
/// Most comprehension macros (`all`, `exists`, `exists_one`, `map`, `filter`) in one filter.
pub const MAX_COMPREHENSIONS: usize = 4;
/// The variables a filter can use.
pub const VARIABLES: [&str; 5] = ["payload", "type", "tenant", "attributes", "id"];
/// CEL type names, usable as values (`type(payload.a) == int`).
const TYPE_NAMES: [&str; 10] = ["int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"];
const MAX_DETAIL_CHARS: usize = 120;

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// Where in the expression a problem is: 1-based line and column (in characters), and the
/// 0-based byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: u32,
    pub column: u32,
    pub offset: usize,
}

impl Position {
    /// The position of the character at `char_index` of `source` (clamped to its end).
    fn of_char(source: &str, char_index: usize) -> Self {
        let (mut line, mut column, mut offset) = (1, 1, source.len());
        for (i, (byte, c)) in source.char_indices().enumerate() {
            if i == char_index {
                offset = byte;
                break;
            }
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        Self { line, column, offset }
    }

    /// The position of the character starting at (or containing) byte `offset` of `source`.
    fn of_byte(source: &str, offset: usize) -> Self {
        let chars = source.char_indices().take_while(|(byte, _)| *byte <= offset).count();
        Self::of_char(source, chars.saturating_sub(1))
    }

    /// The position at 1-based `line` and character `column`, as the parser reports them.
    fn of_line_column(source: &str, line: isize, column: isize) -> Self {
        let line = usize::try_from(line).unwrap_or(1).max(1);
        let column = usize::try_from(column).unwrap_or(1).max(1);
        let before: usize = source.split('\n').take(line - 1).map(|l| l.chars().count() + 1).sum();
        Self::of_char(source, before + column - 1)
    }
}

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("filter: {message}{}", .position.map(|p| format!(" (line {}, column {})", p.line, p.column)).unwrap_or_default())]
pub struct FilterError {
    pub position: Option<Position>,
    pub message: String,
}

impl FilterError {
    fn new(message: impl Into<String>) -> Self {
        Self { position: None, message: message.into() }
    }

    fn at(position: Option<Position>, message: impl Into<String>) -> Self {
        Self { position, message: message.into() }
    }
}

/// A compiled filter. `Send + Sync`: compile once per endpoint and share.
#[derive(Debug)]
pub struct Filter {
    source: String,
    program: Program,
}

impl Filter {
    pub fn compile(source: &str) -> Result<Self, FilterError> {
        if source.trim().is_empty() {
            return Err(FilterError::new("must not be empty; leave the filter out to match every event"));
        }
        if source.len() > MAX_SOURCE_BYTES {
            return Err(FilterError::new(format!("is {} bytes long; the limit is {MAX_SOURCE_BYTES}", source.len())));
        }
        let program = ENV.compile(source).map_err(|errors| {
            let first = errors.errors.first();
            let position = first.map(|e| Position::of_line_column(source, e.pos.0, e.pos.1));
            let message = first.map_or_else(|| "syntax error".to_owned(), |e| format!("syntax error: {}", e.msg));
            FilterError::at(position, message)
        })?;
        let mut check = StaticCheck { source, program: &program, nodes: 0, comprehensions: 0, bound: Vec::new() };
        check.visit(program.expression(), 1, false)?;
        if let Expr::Literal(literal) = &program.expression().expr {
            if !matches!(literal, LiteralValue::Boolean(_)) {
                return Err(FilterError::at(Some(Position::of_char(source, 0)), "must be a boolean expression, e.g. payload.amount > 100"));
            }
        }
        Ok(Self { source: source.to_owned(), program })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn eval(&self, event: &EventView) -> FilterOutcome {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut context = Context::with_env(Arc::clone(&ENV));
            context.set_variable_resolver(event);
            self.program.execute(&context)
        }));
        match result {
            Ok(Ok(Value::Bool(true))) => FilterOutcome::Match,
            Ok(Ok(Value::Bool(false))) => FilterOutcome::NoMatch,
            Ok(Ok(other)) => FilterOutcome::Error(EvalError {
                kind: EvalErrorKind::NotBool,
                message: format!("the filter returned a {}, not a bool", other.type_of()),
            }),
            Ok(Err(error)) => FilterOutcome::Error(classify(&error)),
            Err(_) => FilterOutcome::Error(EvalError { kind: EvalErrorKind::Internal, message: "the CEL interpreter panicked".to_owned() }),
        }
    }

    /// Shorthand: whether the event matches (an error does not).
    pub fn matches(&self, event: &EventView) -> bool {
        self.eval(event) == FilterOutcome::Match
    }
}

struct StaticCheck<'a> {
    source: &'a str,
    program: &'a Program,
    nodes: usize,
    comprehensions: usize,
    /// Variables bound by enclosing comprehensions.
    bound: Vec<&'a str>,
}

impl<'a> StaticCheck<'a> {
    fn position(&self, node: &IdedExpr) -> Option<Position> {
        // The syntax tree records byte offsets (the parser's errors, characters).
        let (start, _) = self.program.source_info().offset_for(node.id)?;
        Some(Position::of_byte(self.source, usize::try_from(start).ok()?))
    }

    fn fail(&self, node: &IdedExpr, message: String) -> FilterError {
        FilterError::at(self.position(node), message)
    }

    fn visit(&mut self, node: &'a IdedExpr, depth: usize, in_comprehension: bool) -> Result<(), FilterError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.fail(node, format!("is too complex: more than {MAX_NODES} operations; simplify it")));
        }
        if depth > MAX_DEPTH {
            return Err(self.fail(node, format!("nests deeper than {MAX_DEPTH} levels; simplify it")));
        }
        let next = depth + 1;
        match &node.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => {
                let known = VARIABLES.contains(&name.as_str())
                    || TYPE_NAMES.contains(&name.as_str())
                    || self.bound.contains(&name.as_str());
                if !known {
                    return Err(self.fail(node, format!("unknown variable `{name}`; a filter can use {}", VARIABLES.join(", "))));
                }
            }
            Expr::Select(select) => self.visit(&select.operand, next, in_comprehension)?,
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    self.visit(target, next, in_comprehension)?;
                }
                for arg in &call.args {
                    self.visit(arg, next, in_comprehension)?;
                }
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.visit(element, next, in_comprehension)?;
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        self.visit(&entry.key, next, in_comprehension)?;
                        self.visit(&entry.value, next, in_comprehension)?;
                    }
                }
            }
            Expr::Struct(_) => {
                return Err(self.fail(node, "message construction is not available in filters".to_owned()));
            }
            Expr::Comprehension(comprehension) => {
                if in_comprehension {
                    return Err(self.fail(node, "a macro (all, exists, exists_one, map, filter) inside another is not allowed: its cost would grow with the square of the payload".to_owned()));
                }
                self.comprehensions += 1;
                if self.comprehensions > MAX_COMPREHENSIONS {
                    return Err(self.fail(node, format!("uses more than {MAX_COMPREHENSIONS} macros (all, exists, exists_one, map, filter)")));
                }
                self.visit(&comprehension.iter_range, next, false)?;
                self.visit(&comprehension.accu_init, next, false)?;
                let outer = self.bound.len();
                self.bound.push(&comprehension.iter_var);
                if let Some(second) = &comprehension.iter_var2 {
                    self.bound.push(second);
                }
                self.bound.push(&comprehension.accu_var);
                self.visit(&comprehension.loop_cond, next, true)?;
                self.visit(&comprehension.loop_step, next, true)?;
                self.visit(&comprehension.result, next, true)?;
                self.bound.truncate(outer);
            }
        }
        Ok(())
    }
}

/// The result of a filter for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterOutcome {
    Match,
    NoMatch,
    /// The filter failed for this event: it does not match; the router counts it.
    Error(EvalError),
}

/// A filter that failed for one event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub kind: EvalErrorKind,
    /// Names fields and types, never values from the payload.
    pub message: String,
}

/// What went wrong, as a bounded metric label ([`EvalErrorKind::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvalErrorKind {
    /// A field, key or variable is not there.
    MissingField,
    /// An operator or function got a value of the wrong type.
    WrongType,
    /// The expression evaluated to something other than a bool.
    NotBool,
    /// Division by zero, overflow, an index out of range.
    Arithmetic,
    /// A function failed (e.g. a bad regular expression).
    Function,
    Internal,
}

impl EvalErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::NotBool => "not_bool",
            Self::Arithmetic => "arithmetic",
            Self::Function => "function",
            Self::Internal => "internal",
        }
    }
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn classify(error: &ExecutionError) -> EvalError {
    use EvalErrorKind::*;
    let (kind, message) = match error {
        ExecutionError::NoSuchKey(key) => (MissingField, format!("no such key: {}", clip(key))),
        ExecutionError::UndeclaredReference(name) => (MissingField, format!("undeclared reference to {}", clip(name))),
        ExecutionError::NoSuchOverload(overload) => (WrongType, clip(&overload.to_string())),
        ExecutionError::UnexpectedType { got, want } => (WrongType, format!("expected {}, got {}", clip(want), clip(got))),
        ExecutionError::ValuesNotComparable(a, b) => (WrongType, format!("a {} cannot be compared to a {}", a.type_of(), b.type_of())),
        ExecutionError::UnsupportedBinaryOperator(op, a, b) => {
            (WrongType, format!("operator {op} does not apply to a {} and a {}", a.type_of(), b.type_of()))
        }
        ExecutionError::UnsupportedIndex(index, target) => {
            (WrongType, format!("a {} cannot index a {}", index.type_of(), target.type_of()))
        }
        ExecutionError::UnsupportedKeyType(key) => (WrongType, format!("a {} cannot be a map key", key.type_of())),
        ExecutionError::UnsupportedTargetType { target } => (WrongType, format!("invalid argument of type {}", target.type_of())),
        ExecutionError::NotSupportedAsMethod { method, target } => {
            (WrongType, format!("{} is not a method of {}", clip(method), target.type_of()))
        }
        ExecutionError::InvalidArgumentCount { expected, actual } => {
            (WrongType, format!("expected {expected} arguments, got {actual}"))
        }
        ExecutionError::MissingArgumentOrTarget => (WrongType, "missing argument or target".to_owned()),
        ExecutionError::DivisionByZero(_) => (Arithmetic, "division by zero".to_owned()),
        ExecutionError::RemainderByZero(_) => (Arithmetic, "remainder by zero".to_owned()),
        ExecutionError::Overflow(op, _, _) => (Arithmetic, format!("overflow in {op}")),
        ExecutionError::IndexOutOfBounds(_) => (Arithmetic, "index out of bounds".to_owned()),
        ExecutionError::DuplicateKey(_) => (WrongType, "repeated key in a map literal".to_owned()),
        // The message may quote a value (e.g. an unparsable string), so only the name is kept.
        ExecutionError::FunctionError { function, .. } => (Function, format!("{} failed", clip(function))),
        _ => (Internal, "evaluation failed".to_owned()),
    };
    EvalError { kind, message }
}

/// The event as a filter sees it, built once per event and shared by every endpoint's filter.
pub struct EventView {
    payload: Box<dyn Val>,
    event_type: Box<dyn Val>,
    tenant: Box<dyn Val>,
    attributes: Box<dyn Val>,
    id: Box<dyn Val>,
}

impl std::fmt::Debug for EventView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventView").field("type", &self.event_type).field("id", &self.id).finish_non_exhaustive()
    }
}

fn boxed(value: Value) -> Box<dyn Val> {
    // Only JSON-shaped values are converted here, and every one of them has a `Val`.
    Box::<dyn Val>::try_from(value).unwrap_or_else(|_| Box::new(cel::common::types::CelNull))
}

impl EventView {
    /// `payload`: the parsed payload, or `None` when it is not JSON (it is then `null`).
    pub fn new(
        id: &str,
        event_type: &str,
        tenant: &str,
        attributes: &HashMap<String, String>,
        payload: Option<&serde_json::Value>,
    ) -> Self {
        let attributes: HashMap<Key, Value> =
            attributes.iter().map(|(k, v)| (Key::from(k.as_str()), Value::from(v.as_str()))).collect();
        Self {
            payload: boxed(payload.map_or(Value::Null, json_to_cel)),
            event_type: boxed(Value::from(event_type)),
            tenant: boxed(Value::from(tenant)),
            attributes: boxed(Value::Map(Map { map: Arc::new(attributes) })),
            id: boxed(Value::from(id)),
        }
    }

    /// Parses the payload bytes; a payload that is not JSON is `null`.
    pub fn from_bytes(id: &str, event_type: &str, tenant: &str, attributes: &HashMap<String, String>, payload: &[u8]) -> Self {
        let parsed = serde_json::from_slice::<serde_json::Value>(payload).ok();
        Self::new(id, event_type, tenant, attributes, parsed.as_ref())
    }
}

impl VariableResolver for EventView {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let value = match variable {
            "payload" => &self.payload,
            "type" => &self.event_type,
            "tenant" => &self.tenant,
            "attributes" => &self.attributes,
            "id" => &self.id,
            _ => return None,
        };
        Some(CowVal::Borrowed(value.as_ref()))
    }
}

/// A JSON value as CEL sees it.
pub fn json_to_cel(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            (None, None) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => Value::List(Arc::new(items.iter().map(json_to_cel).collect())),
        serde_json::Value::Object(members) => Value::Map(Map {
            map: Arc::new(members.iter().map(|(k, v)| (Key::from(k.as_str()), json_to_cel(v))).collect()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn event(payload: serde_json::Value) -> EventView {
        let attributes = HashMap::from([("region".to_owned(), "eu".to_owned()), ("version".to_owned(), "2".to_owned())]);
        EventView::new("evt_1", "order.created", "acme", &attributes, Some(&payload))
    }

    fn order() -> serde_json::Value {
        json!({"amount": 150, "price": 9.5, "currency": "EUR", "customer": {"vip": true, "email": "a@b.example"},
               "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 3}], "note": null})
    }

    fn outcome(source: &str, payload: serde_json::Value) -> FilterOutcome {
        Filter::compile(source).unwrap_or_else(|e| panic!("{source}: {e}")).eval(&event(payload))
    }

    #[test]
    fn matches_on_every_variable() {
        for source in [
            "true",
            r#"type == "order.created""#,
            r#"tenant == "acme""#,
            r#"id == "evt_1""#,
            r#"attributes.region == "eu""#,
            r#"attributes["version"] == "2""#,
            r#""region" in attributes"#,
            "payload.amount > 100",
            "payload.amount >= 150 && payload.currency == 'EUR'",
            "payload.price > 9.0",
            "payload.customer.vip",
            "has(payload.customer.email)",
            "!has(payload.customer.phone)",
            "payload.note == null",
            "payload.items.exists(i, i.qty > 2)",
            "payload.items.all(i, i.sku.size() == 1)",
            "size(payload.items) == 2",
            r#"payload.items.map(i, i.sku) == ["a", "b"]"#,
            r#"payload.customer.email.endsWith("@b.example")"#,
            r#"payload.currency.matches("^[A-Z]{3}$")"#,
            r#"type.startsWith("order.") || tenant == "other""#,
            "type(payload.amount) == int",
        ] {
            assert_eq!(outcome(source, order()), FilterOutcome::Match, "{source}");
        }
    }

    #[test]
    fn does_not_match_when_false() {
        for source in ["false", "payload.amount < 100", r#"tenant != "acme""#, "payload.items.exists(i, i.qty > 5)"] {
            assert_eq!(outcome(source, order()), FilterOutcome::NoMatch, "{source}");
        }
    }

    #[test]
    fn numbers_compare_across_int_and_double() {
        assert_eq!(outcome("payload.amount == 150.0", order()), FilterOutcome::Match);
        assert_eq!(outcome("payload.price < 10", order()), FilterOutcome::Match);
        assert_eq!(outcome("payload.big > 0", json!({"big": u64::MAX})), FilterOutcome::Match);
    }

    #[test]
    fn runtime_errors_do_not_match_and_say_why() {
        let cases = [
            ("payload.missing == 1", EvalErrorKind::MissingField),
            ("payload.customer.phone == 'x'", EvalErrorKind::MissingField),
            ("attributes.nope == 'x'", EvalErrorKind::MissingField),
            ("payload.currency > 3", EvalErrorKind::WrongType),
            ("payload.amount + 'x' == 'y'", EvalErrorKind::WrongType),
            ("payload.amount", EvalErrorKind::NotBool),
            ("payload.currency", EvalErrorKind::NotBool),
            ("payload.amount / 0 == 1", EvalErrorKind::Arithmetic),
            ("payload.items[5].qty == 1", EvalErrorKind::Arithmetic),
        ];
        for (source, kind) in cases {
            match outcome(source, order()) {
                FilterOutcome::Error(e) => {
                    assert_eq!(e.kind, kind, "{source}: {e:?}");
                    assert!(!e.message.is_empty());
                }
                other => panic!("{source}: {other:?}"),
            }
        }
    }

    #[test]
    fn error_messages_do_not_quote_payload_values() {
        let payload = json!({"secret": "hunter2-SECRET", "n": "4111111111111111"});
        for source in ["payload.secret > 3", "payload.n + 1 == 2", "payload.secret", "payload.secret.matches('(')"] {
            let FilterOutcome::Error(e) = outcome(source, payload.clone()) else { panic!("{source}") };
            assert!(!e.message.contains("hunter2") && !e.message.contains("4111"), "{source}: {}", e.message);
        }
    }

    #[test]
    fn a_non_json_payload_is_null() {
        let view = EventView::from_bytes("e", "t.x", "", &HashMap::new(), b"not json");
        assert!(Filter::compile("payload == null").expect("compiles").matches(&view));
        assert!(matches!(Filter::compile("payload.a == 1").expect("compiles").eval(&view), FilterOutcome::Error(_)));
        assert!(Filter::compile("type == 't.x'").expect("compiles").matches(&view));
    }

    #[test]
    fn a_syntax_error_has_its_position() {
        let err = Filter::compile("payload.amount >").expect_err("is refused");
        assert!(err.message.starts_with("syntax error"), "{err}");
        let p = err.position.expect("a position");
        assert_eq!(p.line, 1);
        assert!(p.column >= 15, "{p:?}");
        let err = Filter::compile("type == 'a' &&\n  payload.x ==").expect_err("is refused");
        assert_eq!(err.position.map(|p| p.line), Some(2), "{err:?}");
        assert!(err.to_string().contains("(line 2, column"), "{err}");
    }

    #[test]
    fn the_position_of_a_syntax_error_counts_characters() {
        let err = Filter::compile("'é' == )").expect_err("is refused");
        let p = err.position.expect("a position");
        assert_eq!((p.line, p.column), (1, 8), "{err:?}");
        assert_eq!(p.offset, "'é' == ".len());
        let err = Filter::compile("'é' == 'a' &&\n 'éé' == )").expect_err("is refused");
        assert_eq!(err.position.map(|p| (p.line, p.column)), Some((2, 10)), "{err:?}");
    }

    #[test]
    fn the_position_of_an_unknown_variable_counts_characters() {
        let err = Filter::compile("'éé' == x").expect_err("is refused");
        let p = err.position.expect("a position");
        assert_eq!((p.line, p.column, p.offset), (1, 9, "'éé' == ".len()), "{err:?}");
        let err = Filter::compile("true &&\n  'é' == nope").expect_err("is refused");
        assert_eq!(err.position.map(|p| (p.line, p.column)), Some((2, 10)), "{err:?}");
    }

    #[test]
    fn an_unknown_variable_is_refused_where_it_is() {
        let err = Filter::compile("payload.a == 1 && paylod.b == 2").expect_err("is refused");
        assert!(err.message.contains("unknown variable `paylod`"), "{err}");
        assert!(err.message.contains("payload, type, tenant, attributes, id"), "{err}");
        assert_eq!(err.position.map(|p| (p.line, p.column)), Some((1, 19)), "{err:?}");
    }

    #[test]
    fn macro_variables_are_known_inside_their_macro_only() {
        assert!(Filter::compile("payload.items.exists(item, item.qty > 1)").is_ok());
        let err = Filter::compile("payload.items.exists(item, item.qty > 1) && item.qty > 0").expect_err("is refused");
        assert!(err.message.contains("`item`"), "{err}");
    }

    #[test]
    fn a_literal_that_is_not_a_bool_is_refused() {
        for source in ["1", "'yes'", "null"] {
            let err = Filter::compile(source).expect_err("is refused");
            assert!(err.message.contains("boolean"), "{source}: {err}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        assert!(Filter::compile("").is_err());
        assert!(Filter::compile("   ").is_err());
        let long = format!("payload.a == '{}'", "x".repeat(MAX_SOURCE_BYTES));
        assert!(Filter::compile(&long).expect_err("is refused").message.contains("limit is 4096"));
        let many = ["payload.a == 1"; 150].join(" || ");
        assert!(many.len() < MAX_SOURCE_BYTES);
        assert!(Filter::compile(&many).expect_err("is refused").message.contains("too complex"));
        let deep = format!("{}true{}", "!(".repeat(40), ")".repeat(40));
        assert!(Filter::compile(&deep).is_err());
        let nested = "payload.a.exists(x, payload.b.exists(y, x == y))";
        assert!(Filter::compile(nested).expect_err("is refused").message.contains("inside another"));
        let five = ["payload.a.exists(x, x == 1)"; 5].join(" || ");
        assert!(Filter::compile(&five).expect_err("is refused").message.contains("more than 4 macros"));
        let four = ["payload.a.exists(x, x == 1)"; 4].join(" || ");
        assert!(Filter::compile(&four).is_ok());
        // A chain of comprehensions over the result of another is sequential, not nested.
        assert!(Filter::compile("payload.a.map(x, x * 2).exists(y, y > 3)").is_ok());
    }

    #[test]
    fn a_pathologically_nested_expression_is_refused_without_overflowing() {
        let source = format!("{}1{}", "[".repeat(2000), "]".repeat(2000));
        assert!(Filter::compile(&source[..MAX_SOURCE_BYTES.min(source.len())]).is_err());
        let source = format!("{}1{} == 1", "(".repeat(1000), ")".repeat(1000));
        assert!(Filter::compile(&source).is_err());
    }

    #[test]
    fn filters_and_views_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Filter>();
        assert_send_sync::<EventView>();
    }

    /// The router's work per event at volume. No timing assertion, only agreement.
    #[test]
    fn many_evaluations() {
        let filter = Filter::compile("payload.amount > 100 && attributes.region == 'eu' && payload.items.exists(i, i.qty > 2)").expect("compiles");
        let view = event(order());
        let matched = (0..20_000).filter(|_| filter.matches(&view)).count();
        assert_eq!(matched, 20_000);
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
            ".{0,8}".prop_map(serde_json::Value::from),
            prop_oneof![Just("amount"), Just("items"), Just("a"), Just("")].prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(prop_oneof![Just("amount".to_owned()), Just("items".to_owned()), Just("a".to_owned()), "[a-z]{1,3}"], inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const EXPRESSIONS: [&str; 16] = [
        "payload.amount > 100",
        "payload.amount + 1 > payload.amount",
        "payload.amount * 2 == 4 || payload.amount / 3 == 1",
        "payload.amount % 7 == 0",
        "payload.items.exists(i, i.qty > 2)",
        "payload.items.all(i, i == null || i.a == 1)",
        "size(payload.items) > 0",
        "payload.a.size() > 1",
        "payload.a.startsWith('x') && payload.a.matches('^x+$')",
        "payload[payload.a] == 1",
        "payload.items[0] == payload.a",
        "has(payload.a) && !has(payload.amount)",
        "payload.a in payload.items",
        "int(payload.a) > 0 || double(payload.amount) < 1.5 || string(payload.items) == ''",
        "payload.items.map(x, x).filter(y, y != null).size() >= 0",
        "payload == null || type(payload) == map",
    ];

    proptest! {
        /// Whatever the payload, evaluating never panics, and a `Match` is a real `true`.
        #[test]
        fn eval_never_panics(payload in arb_json(), non_json in any::<bool>()) {
            let view = if non_json {
                EventView::from_bytes("e", "t", "", &HashMap::new(), b"\xff not json")
            } else {
                event(payload)
            };
            for source in EXPRESSIONS {
                let filter = Filter::compile(source).expect("compiles");
                let outcome = filter.eval(&view);
                if let FilterOutcome::Error(e) = &outcome {
                    prop_assert!(e.kind != EvalErrorKind::Internal, "{source}: {e:?}");
                }
            }
        }

        /// Compiling arbitrary text never panics; it succeeds or names a position inside it.
        #[test]
        fn compile_never_panics(source in ".{0,60}") {
            if let Err(e) = Filter::compile(&source) {
                if let Some(p) = e.position {
                    prop_assert!(p.offset <= source.len());
                    prop_assert!(source.is_char_boundary(p.offset));
                }
            }
        }
    }
}
