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

/// The costliest shape the limits allow (four macros, each scanning the payload, with a
/// string search per element) over a large payload still completes, and correctly: its
/// cost grows with the payload, not with the square of anything the filter controls.
#[test]
fn the_costliest_allowed_filter_on_a_large_payload_completes() {
    let items: Vec<serde_json::Value> = (0..20_000).map(|i| json!({"sku": format!("sku-{i}"), "qty": i % 7})).collect();
    let view = event(json!({"items": items, "note": "x".repeat(100_000)}));
    let source = [
        "payload.items.all(i, i.qty < 7)",
        "payload.items.exists(i, i.sku.contains('19999'))",
        "payload.items.filter(i, i.qty == 3).size() > 100",
        "payload.items[6].qty == 6 && !payload.note.contains('y')",
    ]
    .join(" && ");
    let filter = Filter::compile(&source).expect("within the limits");
    assert_eq!(filter.eval(&view), FilterOutcome::Match);
}
