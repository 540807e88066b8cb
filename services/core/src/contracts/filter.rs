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
use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt};
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

impl EventView {
    /// `payload`: the parsed payload, or `None` when it is not JSON (it is then `null`).
    pub fn new(
        id: &str,
        event_type: &str,
        tenant: &str,
        attributes: &HashMap<String, String>,
        payload: Option<&serde_json::Value>,
    ) -> Self {
        let attributes: HashMap<CelMapKey<'static>, Box<dyn Val>> = attributes
            .iter()
            .map(|(k, v)| (CelMapKey::from(k.clone()), Box::new(CelString::from(v.clone())) as Box<dyn Val>))
            .collect();
        Self {
            payload: payload.map_or_else(|| Box::new(CelNull) as Box<dyn Val>, json_to_val),
            event_type: Box::new(CelString::from(event_type.to_owned())),
            tenant: Box::new(CelString::from(tenant.to_owned())),
            attributes: Box::new(CelMap::from(attributes)),
            id: Box::new(CelString::from(id.to_owned())),
        }
    }

    /// Parses the payload bytes; a payload that is not JSON is `null`.
    pub fn from_bytes(id: &str, event_type: &str, tenant: &str, attributes: &HashMap<String, String>, payload: &[u8]) -> Self {
        let parsed = serde_json::from_slice::<serde_json::Value>(payload).ok();
        Self::new(id, event_type, tenant, attributes, parsed.as_ref())
    }
}

/// A JSON value as CEL sees it, built directly (one pass, no intermediate `cel::Value`).
fn json_to_val(value: &serde_json::Value) -> Box<dyn Val> {
    match value {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(b) => Box::new(CelBool::from(*b)),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            (None, None) => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        serde_json::Value::String(s) => Box::new(CelString::from(s.clone())),
        serde_json::Value::Array(items) => Box::new(CelList::from(items.iter().map(json_to_val).collect::<Vec<_>>())),
        serde_json::Value::Object(members) => Box::new(CelMap::from(
            members.iter().map(|(k, v)| (CelMapKey::from(k.clone()), json_to_val(v))).collect::<HashMap<_, _>>(),
        )),
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

#[cfg(test)]
mod tests;
