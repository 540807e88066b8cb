use super::*;
use proptest::prelude::*;
use serde_json::json;

const EVENT: EventMeta<'static> = EventMeta { id: "evt_1", event_type: "order.created", occurred_at_ms: 1_700_000_000_123 };

fn key() -> MaskKey {
    MaskKey::new(b"endpoint mask key")
}

fn config(value: Value) -> TransformConfig {
    serde_json::from_value(value).expect("a valid configuration")
}

fn compile(value: Value) -> Transform {
    Transform::compile(&config(value)).expect("compiles")
}

fn refused(value: Value) -> TransformConfigError {
    Transform::compile(&config(value)).expect_err("refused")
}

fn run(transform: &Transform, payload: &Value) -> Result<Value, TransformError> {
    let text = payload.to_string();
    let body = transform.apply(&EVENT, text.as_bytes(), Some(&key()))?;
    Ok(serde_json::from_slice(&body).expect("the output is JSON"))
}

fn card() -> Value {
    json!({"id": "o1", "card": {"number": "4111111111111111", "exp": "12/30"}, "customer": {"email": "a@b.example", "name": "Ann"},
           "items": [{"sku": "a", "price": 5}, {"sku": "b", "price": 7}], "total": 12})
}

#[test]
fn the_documented_example_parses_and_round_trips() {
    let text = r#"{"envelope":"standard","ops":[{"op":"mask","pointer":"/card/number","with":"hash"}]}"#;
    let parsed: TransformConfig = serde_json::from_str(text).expect("succeeds");
    assert_eq!(parsed.envelope, Envelope::Standard);
    assert_eq!(parsed.ops, vec![Op::Mask { pointer: "/card/number".into(), with: MaskWith::Hash, marker: None, encoding: None }]);
    assert_eq!(serde_json::to_string(&parsed).expect("succeeds"), text);
    let every_op = json!({"envelope": "raw", "ops": [
        {"op": "include", "pointers": ["/a"]},
        {"op": "exclude", "pointers": ["/a/b"]},
        {"op": "mask", "pointer": "/a/c", "with": "marker", "marker": "***"},
        {"op": "mask", "pointer": "/a/d", "with": "hash", "encoding": "base64url"},
        {"op": "rename", "from": "/a/e", "to": "/f"}
    ]});
    let parsed = config(every_op.clone());
    assert_eq!(serde_json::to_value(&parsed).expect("succeeds"), every_op);
    assert_eq!(config(json!({})), TransformConfig::default());
}

#[test]
fn unknown_fields_and_values_are_refused_by_serde() {
    for bad in [
        json!({"envelope": "raw", "extra": 1}),
        json!({"envelope": "fancy"}),
        json!({"ops": [{"op": "mask", "pointer": "/a", "colour": "red"}]}),
        json!({"ops": [{"op": "mask", "pointer": "/a", "with": "blur"}]}),
        json!({"ops": [{"op": "drop", "pointer": "/a"}]}),
        json!({"ops": [{"op": "include", "pointer": "/a"}]}),
        json!({"ops": [{"op": "rename", "from": "/a"}]}),
        json!({"ops": [{"pointer": "/a"}]}),
        json!({"ops": [{"op": "mask", "pointer": "/a", "with": "hash", "encoding": "base32"}]}),
    ] {
        assert!(serde_json::from_value::<TransformConfig>(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn the_identity_borrows_the_payload_even_when_it_is_not_json() {
    let t = compile(json!({}));
    assert!(t.is_identity());
    let payload = b"\x00 not json at all";
    assert!(matches!(t.apply(&EVENT, payload, None), Ok(Cow::Borrowed(p)) if p == payload));
}

#[test]
fn a_non_json_payload_with_a_transformation_is_a_transform_error() {
    for t in [compile(json!({"envelope": "standard"})), compile(json!({"ops": [{"op": "exclude", "pointers": ["/a"]}]}))] {
        let err = t.apply(&EVENT, b"<xml/>", Some(&key())).expect_err("fails");
        assert!(matches!(err, TransformError::NotJson { .. }), "{err:?}");
        assert!(err.to_string().contains("not JSON"), "{err}");
    }
    assert_eq!(DEAD_LETTER_REASON, "transform_error");
}

#[test]
fn the_standard_envelope_wraps_the_bytes_as_published() {
    let t = compile(json!({"envelope": "standard"}));
    let payload = br#"{"b": 1,  "a": [1.50, "x"]}"#;
    let body = t.apply(&EVENT, payload, None).expect("succeeds");
    let text = std::str::from_utf8(&body).expect("succeeds");
    assert!(text.ends_with(r#""data":{"b": 1,  "a": [1.50, "x"]}}"#), "{text}");
    let parsed: Value = serde_json::from_slice(&body).expect("succeeds");
    assert_eq!(parsed, json!({"id": "evt_1", "type": "order.created", "timestamp": "2023-11-14T22:13:20.123Z", "data": {"b": 1, "a": [1.5, "x"]}}));
    // A scalar payload is data too.
    let body = t.apply(&EVENT, b"42", None).expect("succeeds");
    assert_eq!(serde_json::from_slice::<Value>(&body).expect("succeeds")["data"], json!(42));
}

#[test]
fn the_standard_envelope_escapes_the_id_and_type() {
    let event = EventMeta { id: "a\"b", event_type: "t\\x", occurred_at_ms: 0 };
    let t = compile(json!({"envelope": "standard", "ops": [{"op": "exclude", "pointers": ["/x"]}]}));
    let body = t.apply(&event, br#"{"x":1,"y":2}"#, None).expect("succeeds");
    let parsed: Value = serde_json::from_slice(&body).expect("succeeds");
    assert_eq!(parsed, json!({"id": "a\"b", "type": "t\\x", "timestamp": "1970-01-01T00:00:00.000Z", "data": {"y": 2}}));
}

#[test]
fn timestamps_are_rfc3339_utc_with_milliseconds() {
    assert_eq!(rfc3339_millis(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
    assert_eq!(rfc3339_millis(951_782_400_000).as_deref(), Some("2000-02-29T00:00:00.000Z"));
    assert_eq!(rfc3339_millis(-1).as_deref(), Some("1969-12-31T23:59:59.999Z"));
    assert_eq!(rfc3339_millis(253_402_300_799_999).as_deref(), Some("9999-12-31T23:59:59.999Z"));
    assert_eq!(rfc3339_millis(253_402_300_800_000), None);
    assert_eq!(rfc3339_millis(-62_167_219_200_000).as_deref(), Some("0000-01-01T00:00:00.000Z"));
    assert_eq!(rfc3339_millis(-62_167_219_200_001), None);
    assert_eq!(rfc3339_millis(i64::MIN), None);
    assert_eq!(rfc3339_millis(i64::MAX), None);
    let t = compile(json!({"envelope": "standard"}));
    let far = EventMeta { occurred_at_ms: i64::MAX, ..EVENT };
    assert!(matches!(t.apply(&far, b"{}", None), Err(TransformError::BadTimestamp { .. })));
}

#[test]
fn include_keeps_only_the_named_members() {
    let t = compile(json!({"ops": [{"op": "include", "pointers": ["/id", "/customer/name", "/items", "/absent", "/card/number/deeper"]}]}));
    assert_eq!(run(&t, &card()).expect("succeeds"), json!({"id": "o1", "customer": {"name": "Ann"}, "items": card()["items"]}));
}

#[test]
fn include_refuses_to_step_into_an_array() {
    let t = compile(json!({"ops": [{"op": "include", "pointers": ["/items/0/sku"]}]}));
    assert!(matches!(run(&t, &card()), Err(TransformError::IncludeThroughArray { .. })));
    let t = compile(json!({"ops": [{"op": "include", "pointers": ["/0"]}]}));
    assert!(matches!(run(&t, &json!([1, 2])), Err(TransformError::IncludeThroughArray { .. })));
    assert!(matches!(run(&t, &json!("text")), Err(TransformError::IncludeThroughArray { .. })));
}

#[test]
fn exclude_removes_members_and_array_elements() {
    let t = compile(json!({"ops": [{"op": "exclude", "pointers": ["/card", "/customer/email", "/items/0", "/absent", "/items/9"]}]}));
    assert_eq!(
        run(&t, &card()).expect("succeeds"),
        json!({"id": "o1", "customer": {"name": "Ann"}, "items": [{"sku": "b", "price": 7}], "total": 12})
    );
}

#[test]
fn pointers_follow_rfc6901_escapes_and_indices() {
    let payload = json!({"a/b": 1, "m~n": 2, "list": [0, 1, 2], "obj": {"01": "kept"}});
    let t = compile(json!({"ops": [{"op": "exclude", "pointers": ["/a~1b", "/m~0n", "/list/01", "/list/+1", "/obj/01"]}]}));
    assert_eq!(run(&t, &payload).expect("succeeds"), json!({"list": [0, 1, 2], "obj": {}}));
    let t = compile(json!({"ops": [{"op": "mask", "pointer": "/list/1"}, {"op": "mask", "pointer": "/m~0n"}]}));
    assert_eq!(run(&t, &payload).expect("succeeds")["list"], json!([0, DEFAULT_MARKER, 2]));
}

#[test]
fn mask_with_a_marker_replaces_any_value() {
    let t = compile(json!({"ops": [
        {"op": "mask", "pointer": "/card/number"},
        {"op": "mask", "pointer": "/customer", "with": "marker", "marker": "<redacted>"},
        {"op": "mask", "pointer": "/absent"}
    ]}));
    let out = run(&t, &card()).expect("succeeds");
    assert_eq!(out["card"], json!({"number": DEFAULT_MARKER, "exp": "12/30"}));
    assert_eq!(out["customer"], json!("<redacted>"));
    assert!(out.get("absent").is_none());
}

#[test]
fn mask_with_a_hash_is_keyed_stable_and_joinable() {
    let hex = compile(json!({"ops": [{"op": "mask", "pointer": "/card/number", "with": "hash"}]}));
    let out = run(&hex, &card()).expect("succeeds");
    let hashed = out["card"]["number"].as_str().expect("succeeds").to_owned();
    let digits = hashed.strip_prefix(HASH_PREFIX).expect("prefixed");
    assert_eq!(digits.len(), 64);
    assert!(digits.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    // The HMAC-SHA256 of the string's bytes under the endpoint's key.
    let mut mac = HmacSha256::new_from_slice(b"endpoint mask key").expect("succeeds");
    mac.update(b"4111111111111111");
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digits, expected);
    // Same value, same hash (a join key); another value or another key, another hash.
    let mut other = card();
    other["id"] = json!("o2");
    assert_eq!(run(&hex, &other).expect("succeeds")["card"]["number"], json!(hashed));
    other["card"]["number"] = json!("5500000000000004");
    assert_ne!(run(&hex, &other).expect("succeeds")["card"]["number"], json!(hashed));
    let text = card().to_string();
    let body = hex.apply(&EVENT, text.as_bytes(), Some(&MaskKey::new(b"another key"))).expect("succeeds");
    assert_ne!(serde_json::from_slice::<Value>(&body).expect("succeeds")["card"]["number"], json!(hashed));

    let b64 = compile(json!({"ops": [{"op": "mask", "pointer": "/card/number", "with": "hash", "encoding": "base64url"}]}));
    let encoded = run(&b64, &card()).expect("succeeds")["card"]["number"].as_str().expect("succeeds").to_owned();
    let decoded = BASE64URL.decode(encoded.strip_prefix(HASH_PREFIX).expect("succeeds")).expect("succeeds");
    assert_eq!(decoded.iter().map(|b| format!("{b:02x}")).collect::<String>(), expected);
}

#[test]
fn a_hashed_non_string_is_hashed_as_its_json_text() {
    let t = compile(json!({"ops": [{"op": "mask", "pointer": "/n", "with": "hash"}, {"op": "mask", "pointer": "/s", "with": "hash"}]}));
    let out = run(&t, &json!({"n": 42, "s": "42"})).expect("succeeds");
    // 42 and "42" are hashed over the same bytes: the text a consumer sees.
    assert_eq!(out["n"], out["s"]);
    let out = run(&t, &json!({"n": {"b": 1, "a": 2}, "s": "{\"a\":2,\"b\":1}"})).expect("succeeds");
    assert_eq!(out["n"], out["s"]);
}

#[test]
fn a_hash_mask_without_a_key_fails() {
    let t = compile(json!({"ops": [{"op": "mask", "pointer": "/a", "with": "hash"}]}));
    assert!(t.needs_key());
    assert!(!compile(json!({"ops": [{"op": "mask", "pointer": "/a"}]})).needs_key());
    assert_eq!(t.apply(&EVENT, br#"{"a":1}"#, None).expect_err("fails"), TransformError::MissingKey);
    // Nothing to mask, nothing to fail.
    assert!(t.apply(&EVENT, br#"{"b":1}"#, None).is_ok());
}

#[test]
fn rename_moves_and_creates_parents() {
    let t = compile(json!({"ops": [
        {"op": "rename", "from": "/customer/email", "to": "/contact/email"},
        {"op": "rename", "from": "/total", "to": "/amount"},
        {"op": "rename", "from": "/absent", "to": "/never"}
    ]}));
    let out = run(&t, &card()).expect("succeeds");
    assert_eq!(out["contact"], json!({"email": "a@b.example"}));
    assert_eq!(out["customer"], json!({"name": "Ann"}));
    assert_eq!(out["amount"], json!(12));
    assert!(out.get("total").is_none() && out.get("never").is_none());
}

#[test]
fn rename_never_overwrites() {
    let t = compile(json!({"ops": [{"op": "rename", "from": "/id", "to": "/total"}]}));
    assert_eq!(run(&t, &card()).expect_err("fails"), TransformError::RenameTargetExists { to: "/total".into() });
    let t = compile(json!({"ops": [{"op": "rename", "from": "/id", "to": "/items/x"}]}));
    assert_eq!(run(&t, &card()).expect_err("fails"), TransformError::RenameTargetParent { to: "/items/x".into() });
    let t = compile(json!({"ops": [{"op": "rename", "from": "/id", "to": "/total/x"}]}));
    assert_eq!(run(&t, &card()).expect_err("fails"), TransformError::RenameTargetParent { to: "/total/x".into() });
}

#[test]
fn ops_run_in_order() {
    let t = compile(json!({"ops": [
        {"op": "mask", "pointer": "/card/number"},
        {"op": "rename", "from": "/card", "to": "/payment"},
        {"op": "include", "pointers": ["/payment", "/id"]},
        {"op": "exclude", "pointers": ["/payment/exp"]}
    ]}));
    assert_eq!(run(&t, &card()).expect("succeeds"), json!({"id": "o1", "payment": {"number": DEFAULT_MARKER}}));
}

#[test]
fn bad_configurations_name_the_field_and_the_fix() {
    let cases = [
        (json!({"ops": [{"op": "mask", "pointer": ""}]}), "ops[0].pointer", "whole payload"),
        (json!({"ops": [{"op": "mask", "pointer": "card/number"}]}), "ops[0].pointer", "must start with '/'"),
        (json!({"ops": [{"op": "exclude", "pointers": ["/a", "/b~2"]}]}), "ops[0].pointers[1]", "'~' must be followed"),
        (json!({"ops": [{"op": "exclude", "pointers": ["/a~"]}]}), "ops[0].pointers[0]", "'~' must be followed"),
        (json!({"ops": [{"op": "include", "pointers": []}]}), "ops[0].pointers", "at least one"),
        (json!({"ops": [{"op": "mask", "pointer": "/a", "with": "hash", "marker": "x"}]}), "ops[0].marker", "\"marker\" only"),
        (json!({"ops": [{"op": "mask", "pointer": "/a", "encoding": "hex"}]}), "ops[0].encoding", "\"hash\" only"),
        (json!({"ops": [{"op": "mask", "pointer": "/a", "marker": "x".repeat(300)}]}), "ops[0].marker", "limit"),
        (json!({"ops": [{"op": "rename", "from": "/a", "to": "/a"}]}), "ops[0].to", "into itself"),
        (json!({"ops": [{"op": "rename", "from": "/a", "to": "/a/b"}]}), "ops[0].to", "into itself"),
        (json!({"ops": [{"op": "rename", "from": "/a/b", "to": "/a"}]}), "ops[0].to", "always exists"),
        (json!({"ops": [{"op": "rename", "from": "/a", "to": "/x"}, {"op": "rename", "from": "/b", "to": "/x"}]}), "ops[1].to", "already the target"),
        (json!({"ops": [{"op": "rename", "from": "/card", "to": "/p"}, {"op": "mask", "pointer": "/card/number"}]}), "ops[1].pointer", "put the mask first"),
        (json!({"ops": [{"op": "rename", "from": "", "to": "/p"}]}), "ops[0].from", "whole payload"),
    ];
    for (value, field, problem) in cases {
        let err = refused(value.clone());
        assert_eq!(err.field, field, "{value}: {err}");
        assert!(err.problem.contains(problem), "{value}: {err}");
        assert!(err.to_string().starts_with(&format!("transform.{field}: ")), "{err}");
    }
    let too_many = json!({"ops": vec![json!({"op": "exclude", "pointers": ["/a"]}); MAX_OPS + 1]});
    assert_eq!(refused(too_many).field, "ops");
    let long = json!({"ops": [{"op": "exclude", "pointers": [format!("/{}", "a".repeat(MAX_POINTER_BYTES))]}]});
    assert!(refused(long).problem.contains("limit"));
}

#[test]
fn a_mask_of_the_new_location_after_a_rename_is_fine() {
    let t = compile(json!({"ops": [{"op": "rename", "from": "/card", "to": "/p"}, {"op": "mask", "pointer": "/p/number"}]}));
    assert_eq!(run(&t, &card()).expect("succeeds")["p"]["number"], json!(DEFAULT_MARKER));
}

#[test]
fn transforms_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Transform>();
    assert_send_sync::<MaskKey>();
}

// ---- properties ----

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-z0-9 ~/]{0,6}".prop_map(Value::from),
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![Just("a".to_owned()), Just("b".to_owned()), Just("c".to_owned()), Just("x/y".to_owned()), Just("m~n".to_owned()), "[a-z]{1,3}"]
}

fn arb_json() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(arb_key(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects all the way down, so pointers stay put after removals.
fn arb_object_tree() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(4, 40, 5, |inner| {
        prop::collection::btree_map(arb_key(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect()))
    })
    .prop_map(|v| if v.is_object() { v } else { json!({"a": v}) })
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Every pointer to a value in the document (the root excluded).
fn all_pointers(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            for (k, v) in members {
                let p = format!("{prefix}/{}", escape(k));
                out.push(p.clone());
                all_pointers(v, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{prefix}/{i}");
                out.push(p.clone());
                all_pointers(v, &p, out);
            }
        }
        _ => {}
    }
}

fn pointers_of(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    all_pointers(value, "", &mut out);
    out
}

/// A document with a secret planted at some pointer: (document, pointer).
fn planted() -> impl Strategy<Value = (Value, String, String)> {
    (arb_json().prop_map(|v| if v.is_object() { v } else { json!({"a": v}) }), any::<prop::sample::Index>(), "[A-Z][A-Za-z0-9]{7,15}", 0..4usize)
        .prop_map(|(mut doc, index, token, shape)| {
            let pointers = pointers_of(&doc);
            let pointer = if pointers.is_empty() { "/a".to_owned() } else { index.get(&pointers).clone() };
            let secret = format!("SECRET-{token}");
            let value = match shape {
                0 => json!(secret),
                1 => json!({"inner": secret, "list": [secret]}),
                2 => json!([1, secret]),
                _ => json!({"deep": {"deeper": secret}}),
            };
            match doc.pointer_mut(&pointer) {
                Some(slot) => *slot = value,
                None => doc["a"] = value,
            }
            let pointer = if doc.pointer(&pointer).is_some_and(|v| v.to_string().contains(&secret)) { pointer } else { "/a".to_owned() };
            (doc, pointer, secret)
        })
}

fn arb_pointer_from(doc: &Value) -> prop::sample::Select<String> {
    let mut candidates = pointers_of(doc);
    candidates.extend(["/a", "/zz", "/a/b", "/0", "/x~1y", "/m~0n/c"].map(String::from));
    prop::sample::select(candidates)
}

fn arb_ops(doc: &Value) -> impl Strategy<Value = Vec<Op>> {
    let pointer = arb_pointer_from(doc);
    let op = prop_oneof![
        prop::collection::vec(pointer.clone(), 1..3).prop_map(|pointers| Op::Include { pointers }),
        prop::collection::vec(pointer.clone(), 1..3).prop_map(|pointers| Op::Exclude { pointers }),
        (pointer.clone(), any::<bool>()).prop_map(|(pointer, hash)| Op::Mask {
            pointer,
            with: if hash { MaskWith::Hash } else { MaskWith::Marker },
            marker: None,
            encoding: None
        }),
        (pointer.clone(), prop_oneof![pointer, Just("/new".to_owned()), Just("/n/e/w".to_owned())]).prop_map(|(from, to)| Op::Rename { from, to }),
    ];
    prop::collection::vec(op, 0..5)
}

fn doc_and_ops() -> impl Strategy<Value = (Value, Vec<Op>, bool)> {
    arb_json().prop_flat_map(|doc| {
        let ops = arb_ops(&doc);
        (Just(doc), ops, any::<bool>())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A masked value never appears in the output, whatever else the payload holds and
    /// whatever operations follow, with either kind of mask and either envelope.
    #[test]
    fn a_masked_value_never_leaks(
        (doc, pointer, secret) in planted(),
        hash in any::<bool>(),
        standard in any::<bool>(),
        later in prop::collection::vec(prop_oneof![
            Just(Op::Exclude { pointers: vec!["/b".into()] }),
            Just(Op::Rename { from: "/c".into(), to: "/moved".into() }),
            Just(Op::Include { pointers: vec!["/a".into(), "/b".into(), "/c".into()] }),
        ], 0..3),
    ) {
        let mut ops = vec![Op::Mask {
            pointer: pointer.clone(),
            with: if hash { MaskWith::Hash } else { MaskWith::Marker },
            marker: None,
            encoding: None,
        }];
        ops.extend(later);
        let envelope = if standard { Envelope::Standard } else { Envelope::Raw };
        let Ok(t) = Transform::compile(&TransformConfig { envelope, ops }) else { return Ok(()) };
        let text = doc.to_string();
        prop_assert!(text.contains(&secret));
        // A failed transformation sends nothing.
        if let Ok(body) = t.apply(&EVENT, text.as_bytes(), Some(&key())) {
            let out = String::from_utf8(body.into_owned()).expect("UTF-8");
            prop_assert!(!out.contains(&secret), "{} leaked at {} in {}", secret, pointer, out);
            prop_assert!(!out.contains(&secret[7..]), "the secret's token leaked");
        }
    }

    /// Masking a single arbitrary value replaces exactly it.
    #[test]
    fn a_masked_value_of_any_type_is_replaced((doc, ops, _) in doc_and_ops(), hash in any::<bool>()) {
        let _ = ops;
        let pointers = pointers_of(&doc);
        for pointer in pointers.iter().take(5) {
            let with = if hash { MaskWith::Hash } else { MaskWith::Marker };
            let t = Transform::compile(&TransformConfig { envelope: Envelope::Raw, ops: vec![Op::Mask { pointer: pointer.clone(), with, marker: None, encoding: None }] }).expect("compiles");
            let out = t.apply_steps(doc.clone(), Some(&key())).expect("succeeds");
            let masked = out.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
            prop_assert!(masked == DEFAULT_MARKER || masked.starts_with(HASH_PREFIX), "{}: {}", pointer, out);
        }
    }

    /// Whatever the operations, the output is JSON (or the transformation fails cleanly),
    /// and the same input gives the same bytes: twice, and after a serde round trip of the
    /// configuration.
    #[test]
    fn output_is_json_and_deterministic((doc, ops, standard) in doc_and_ops()) {
        let config = TransformConfig { envelope: if standard { Envelope::Standard } else { Envelope::Raw }, ops };
        let Ok(t) = Transform::compile(&config) else { return Ok(()) };
        let text = doc.to_string();
        let first = t.apply(&EVENT, text.as_bytes(), Some(&key()));
        if let Ok(body) = &first {
            prop_assert!(serde_json::from_slice::<Value>(body).is_ok(), "{}", String::from_utf8_lossy(body));
        }
        prop_assert_eq!(&first, &t.apply(&EVENT, text.as_bytes(), Some(&key())));
        let again: TransformConfig = serde_json::from_str(&serde_json::to_string(&config).expect("succeeds")).expect("succeeds");
        prop_assert_eq!(&again, &config);
        prop_assert_eq!(&first, &Transform::compile(&again).expect("compiles").apply(&EVENT, text.as_bytes(), Some(&key())));
    }

    /// After an exclude, none of its pointers lead anywhere, and everything else is intact.
    #[test]
    fn exclude_removes_only_its_pointers(doc in arb_object_tree(), picks in prop::collection::vec(any::<prop::sample::Index>(), 1..4)) {
        let all = pointers_of(&doc);
        prop_assume!(!all.is_empty());
        let excluded: Vec<String> = picks.iter().map(|i| i.get(&all).clone()).collect();
        let t = Transform::compile(&TransformConfig { envelope: Envelope::Raw, ops: vec![Op::Exclude { pointers: excluded.clone() }] }).expect("compiles");
        let out = t.apply_steps(doc.clone(), None).expect("succeeds");
        for p in &excluded {
            prop_assert!(out.pointer(p).is_none(), "{} still in {}", p, out);
        }
        for p in &all {
            // Neither removed nor holding something removed.
            let related = excluded.iter().any(|e| p == e || p.starts_with(&format!("{e}/")) || e.starts_with(&format!("{p}/")));
            if !related {
                prop_assert_eq!(out.pointer(p), doc.pointer(p), "{} changed", p);
            }
        }
    }

    /// After an include, every value in the output is at or under an included pointer and
    /// equal to the source's; every included pointer present in the source is kept.
    #[test]
    fn include_keeps_only_its_pointers(doc in arb_object_tree(), picks in prop::collection::vec(any::<prop::sample::Index>(), 1..4)) {
        let all: Vec<String> = pointers_of(&doc).into_iter().filter(|p| {
            // Only pointers through objects: the documented limit of include.
            let mut at = &doc;
            let tokens: Vec<&str> = p[1..].split('/').collect();
            for (i, raw) in tokens.iter().enumerate() {
                let token = raw.replace("~1", "/").replace("~0", "~");
                match at {
                    Value::Object(m) => at = &m[&token],
                    _ => return false,
                }
                if i + 1 < tokens.len() && !at.is_object() { return false; }
            }
            true
        }).collect();
        prop_assume!(!all.is_empty());
        let included: Vec<String> = picks.iter().map(|i| i.get(&all).clone()).collect();
        let t = Transform::compile(&TransformConfig { envelope: Envelope::Raw, ops: vec![Op::Include { pointers: included.clone() }] }).expect("compiles");
        let out = t.apply_steps(doc.clone(), None).expect("succeeds");
        for p in &included {
            prop_assert_eq!(out.pointer(p), doc.pointer(p));
        }
        for p in pointers_of(&out) {
            let related = included.iter().any(|i| p == *i || p.starts_with(&format!("{i}/")) || i.starts_with(&format!("{p}/")));
            prop_assert!(related, "{} kept in {} though only {:?} were included", p, out, included);
            if included.iter().any(|i| p == *i || p.starts_with(&format!("{i}/"))) {
                prop_assert_eq!(out.pointer(&p), doc.pointer(&p));
            }
        }
    }

    /// Any text payload: the identity passes it through, every other transformation
    /// either fails or yields JSON; never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(payload in prop::collection::vec(any::<u8>(), 0..64), standard in any::<bool>()) {
        let t = compile(json!({"envelope": if standard { "standard" } else { "raw" }, "ops": [{"op": "mask", "pointer": "/a", "with": "hash"}]}));
        if let Ok(body) = t.apply(&EVENT, &payload, Some(&key())) {
            prop_assert!(serde_json::from_slice::<Value>(&body).is_ok());
        }
        let identity = compile(json!({}));
        let passed = identity.apply(&EVENT, &payload, None).expect("succeeds");
        prop_assert_eq!(passed.as_ref(), payload.as_slice());
    }

    /// The timestamp agrees with a day count done the slow way, for any time in range.
    #[test]
    fn timestamps_round_trip(ms in -62_167_219_200_000i64..253_402_300_800_000) {
        let text = rfc3339_millis(ms).expect("succeeds");
        prop_assert_eq!(text.len(), 24);
        let year: i64 = text[0..4].parse().expect("a number");
        let month: i64 = text[5..7].parse().expect("a number");
        let day: i64 = text[8..10].parse().expect("a number");
        let (h, m, s): (i64, i64, i64) = (text[11..13].parse().expect("a number"), text[14..16].parse().expect("a number"), text[17..19].parse().expect("a number"));
        let millis: i64 = text[20..23].parse().expect("a number");
        // days_from_civil, the inverse.
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        prop_assert_eq!(((days * 86_400 + h * 3600 + m * 60 + s) * 1000) + millis, ms);
    }
}
