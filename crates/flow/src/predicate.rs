//! Predicates: the `when` language.
//!
//! ```text
//! review.decision == "approve"
//! a.score >= 0.8 && !(a.flags.halted) || inputs.force
//! a.side in ["buy", "sell"]
//! ```
//!
//! - Operands: [`ValuePath`]s, literals (`"text"` with JSON escapes, numbers, `true`, `false`,
//!   `null`), lists of operands (`[1, 2]`) and parenthesised expressions.
//! - Operators, loosest first: `||`, `&&`, comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`;
//!   not chainable), `!`.
//! - `&&`, `||` and `!` work on truthiness: `null`, `false`, `0`, `""`, `[]` and `{}` are false,
//!   everything else is true. A bare operand is tested the same way (`when: a.ok`).
//!
//! A predicate has at most 256 operands and 32 levels of nesting.
//!
//! # Missing values
//! Evaluation never fails: **a path that does not resolve evaluates to `null`**. So when `review`
//! produced no `decision`, `review.decision == "approve"` is false, `review.decision != "approve"`
//! is true and `review.decision == null` is true.
//!
//! # Comparisons
//! `==`/`!=` compare JSON values structurally, numbers by value (`1 == 1.0`). `<`, `<=`, `>`, `>=`
//! order two numbers or two strings (by code point); for any other pair they are false. `x in y`
//! is true when `y` is an array with an element equal to `x`, a string containing the string `x`,
//! or an object with the key `x`; otherwise false.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Number, Value};

use crate::value_path::{ValuePath, expected, is_name_char, parse_string, skip_spaces};

/// A predicate syntax error; `column` is 1-based, in characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {column}")]
pub struct PredicateError {
    pub column: usize,
    pub message: String,
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl CompareOp {
    fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::In => "in",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Literal(Value),
    Path(ValuePath),
    List(Vec<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(CompareOp, Box<Expr>, Box<Expr>),
}

/// A parsed predicate. Displays (and serialises) in canonical form: single spaces around binary
/// operators, parentheses only where needed.
#[derive(Clone, Debug, PartialEq)]
pub struct Predicate {
    expr: Expr,
}

impl Predicate {
    /// Parses predicate text.
    pub fn parse(text: &str) -> Result<Predicate, PredicateError> {
        let chars: Vec<char> = text.chars().collect();
        let mut parser = Parser {
            chars: &chars,
            pos: 0,
            depth: 0,
            operands: 0,
        };
        let expr = parser.or().map_err(|(offset, message)| PredicateError {
            column: offset + 1,
            message,
        })?;
        parser.skip();
        if parser.pos < chars.len() {
            let message = if chars[parser.pos] == '=' {
                "unexpected `=`; write `==` to compare".to_string()
            } else if parser.comparison_ahead() {
                "comparisons cannot be chained; combine them with `&&`".to_string()
            } else {
                expected("an operator or the end", &chars, parser.pos)
            };
            return Err(PredicateError {
                column: parser.pos + 1,
                message,
            });
        }
        Ok(Predicate { expr })
    }

    /// Evaluates against the run context (see the module docs for the rules); never fails.
    pub fn evaluate(&self, context: &Value) -> bool {
        truthy(&eval(&self.expr, context))
    }

    /// The paths the predicate reads, in order.
    pub fn references(&self) -> Vec<&ValuePath> {
        let mut out = Vec::new();
        collect_paths(&self.expr, &mut out);
        out
    }

    /// Whether the predicate reads no path, so always evaluates the same.
    pub fn is_constant(&self) -> bool {
        self.references().is_empty()
    }
}

fn collect_paths<'a>(expr: &'a Expr, out: &mut Vec<&'a ValuePath>) {
    match expr {
        Expr::Literal(_) => {}
        Expr::Path(p) => out.push(p),
        Expr::List(items) => items.iter().for_each(|i| collect_paths(i, out)),
        Expr::Not(e) => collect_paths(e, out),
        Expr::And(l, r) | Expr::Or(l, r) | Expr::Compare(_, l, r) => {
            collect_paths(l, out);
            collect_paths(r, out);
        }
    }
}

fn eval<'v>(expr: &'v Expr, context: &'v Value) -> Cow<'v, Value> {
    match expr {
        Expr::Literal(v) => Cow::Borrowed(v),
        Expr::Path(p) => Cow::Borrowed(p.resolve(context).unwrap_or(&Value::Null)),
        Expr::List(items) => Cow::Owned(Value::Array(
            items
                .iter()
                .map(|i| eval(i, context).into_owned())
                .collect(),
        )),
        Expr::Not(e) => Cow::Owned(Value::Bool(!truthy(&eval(e, context)))),
        Expr::And(l, r) => Cow::Owned(Value::Bool(
            truthy(&eval(l, context)) && truthy(&eval(r, context)),
        )),
        Expr::Or(l, r) => Cow::Owned(Value::Bool(
            truthy(&eval(l, context)) || truthy(&eval(r, context)),
        )),
        Expr::Compare(op, l, r) => {
            let (l, r) = (eval(l, context), eval(r, context));
            let result = match op {
                CompareOp::Eq => json_equal(&l, &r),
                CompareOp::Ne => !json_equal(&l, &r),
                CompareOp::Lt => order(&l, &r) == Some(Ordering::Less),
                CompareOp::Le => matches!(order(&l, &r), Some(Ordering::Less | Ordering::Equal)),
                CompareOp::Gt => order(&l, &r) == Some(Ordering::Greater),
                CompareOp::Ge => {
                    matches!(order(&l, &r), Some(Ordering::Greater | Ordering::Equal))
                }
                CompareOp::In => contains(&r, &l),
            };
            Cow::Owned(Value::Bool(result))
        }
    }
}

/// JSON truthiness: `null`, `false`, `0`, `""`, `[]`, `{}` are false.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Structural equality with numbers compared by value (RFC 6902's rule for `test`, too).
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Integers exactly, otherwise as `f64`.
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::Array(items), _) => items.iter().any(|i| json_equal(i, needle)),
        (Value::String(s), Value::String(n)) => s.contains(n.as_str()),
        (Value::Object(map), Value::String(k)) => map.contains_key(k),
        _ => false,
    }
}

/// Nesting (parentheses, lists, `!`) a predicate may have.
const MAX_DEPTH: usize = 32;
/// Operands (and `!`s) a predicate may have; bounds the tree, so evaluation cannot recurse deep.
const MAX_OPERANDS: usize = 256;

struct Parser<'c> {
    chars: &'c [char],
    pos: usize,
    depth: usize,
    operands: usize,
}

type Parsed = Result<Expr, (usize, String)>;

impl Parser<'_> {
    fn skip(&mut self) {
        skip_spaces(self.chars, &mut self.pos);
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip();
        let end = self.pos + token.chars().count();
        let matches = self
            .chars
            .get(self.pos..end)
            .is_some_and(|s| s.iter().copied().eq(token.chars()));
        // `in` is a word: `inputs` is not `in` followed by `puts`.
        let word_ok = !token.chars().all(char::is_alphabetic)
            || !self.chars.get(end).is_some_and(|c| is_name_char(*c));
        if matches && word_ok {
            self.pos = end;
        }
        matches && word_ok
    }

    fn or(&mut self) -> Parsed {
        let mut left = self.and()?;
        while self.eat("||") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Parsed {
        let mut left = self.comparison()?;
        while self.eat("&&") {
            let right = self.comparison()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn compare_op(&mut self) -> Option<CompareOp> {
        // Two-character operators first so `<=` is not read as `<`.
        const OPS: [(&str, CompareOp); 7] = [
            ("==", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            ("<=", CompareOp::Le),
            (">=", CompareOp::Ge),
            ("<", CompareOp::Lt),
            (">", CompareOp::Gt),
            ("in", CompareOp::In),
        ];
        OPS.iter().find(|(t, _)| self.eat(t)).map(|(_, op)| *op)
    }

    fn comparison_ahead(&mut self) -> bool {
        let saved = self.pos;
        let found = self.compare_op().is_some();
        self.pos = saved;
        found
    }

    fn comparison(&mut self) -> Parsed {
        let left = self.unary()?;
        let Some(op) = self.compare_op() else {
            return Ok(left);
        };
        let right = self.unary()?;
        Ok(Expr::Compare(op, Box::new(left), Box::new(right)))
    }

    fn unary(&mut self) -> Parsed {
        self.skip();
        self.operands += 1;
        if self.operands > MAX_OPERANDS {
            return Err((
                self.pos,
                format!("too long: more than {MAX_OPERANDS} operands"),
            ));
        }
        if self.depth >= MAX_DEPTH {
            return Err((
                self.pos,
                format!("nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.depth += 1;
        let parsed = self.unary_inner();
        self.depth -= 1;
        parsed
    }

    fn unary_inner(&mut self) -> Parsed {
        if self.chars.get(self.pos) == Some(&'!') && self.chars.get(self.pos + 1) != Some(&'=') {
            self.pos += 1;
            let inner = self.unary()?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Parsed {
        self.skip();
        let start = self.pos;
        match self.chars.get(start) {
            None => Err((start, "expected a value, found the end".to_string())),
            Some('(') => {
                self.pos += 1;
                let inner = self.or()?;
                if !self.eat(")") {
                    return Err((self.pos, expected("`)`", self.chars, self.pos)));
                }
                Ok(inner)
            }
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.eat("]") {
                    return Ok(Expr::List(items));
                }
                loop {
                    items.push(self.unary()?);
                    if self.eat("]") {
                        return Ok(Expr::List(items));
                    }
                    if !self.eat(",") {
                        return Err((self.pos, expected("`,` or `]`", self.chars, self.pos)));
                    }
                }
            }
            Some('"') => {
                let (text, next) = parse_string(self.chars, start)?;
                self.pos = next;
                Ok(Expr::Literal(Value::String(text)))
            }
            Some(c) if is_name_char(*c) => {
                if let Some(literal) = self.literal() {
                    return Ok(Expr::Literal(literal));
                }
                let (path, next) = ValuePath::parse(self.chars, start)?;
                self.pos = next;
                Ok(Expr::Path(path))
            }
            Some(_) => Err((start, expected("a value", self.chars, start))),
        }
    }

    /// A number or `true`/`false`/`null` at the cursor, unless the word continues as a path
    /// (`1st.x`, `true.x`).
    fn literal(&mut self) -> Option<Value> {
        let start = self.pos;
        let mut end = start;
        if self.chars.get(end) == Some(&'-') {
            end += 1;
        }
        let digits = |chars: &[char], mut i: usize| {
            while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
            }
            i
        };
        let value = if self.chars.get(end).is_some_and(|c| c.is_ascii_digit()) {
            end = digits(self.chars, end);
            if self.chars.get(end) == Some(&'.')
                && self.chars.get(end + 1).is_some_and(|c| c.is_ascii_digit())
            {
                end = digits(self.chars, end + 1);
            }
            if matches!(self.chars.get(end), Some('e' | 'E')) {
                let mut exp = end + 1;
                if matches!(self.chars.get(exp), Some('+' | '-')) {
                    exp += 1;
                }
                if self.chars.get(exp).is_some_and(|c| c.is_ascii_digit()) {
                    end = digits(self.chars, exp);
                }
            }
            let text: String = self.chars[start..end].iter().collect();
            // JSON numbers have no leading zeros; `007` is read as a path instead.
            serde_json::from_str::<Number>(&text)
                .ok()
                .map(Value::Number)
        } else {
            let mut word_end = start;
            while self.chars.get(word_end).is_some_and(|c| is_name_char(*c)) {
                word_end += 1;
            }
            end = word_end;
            let word: String = self.chars[start..end].iter().collect();
            match word.as_str() {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                "null" => Some(Value::Null),
                _ => None,
            }
        };
        let continues = self
            .chars
            .get(end)
            .is_some_and(|c| is_name_char(*c) || *c == '.' || *c == '[');
        match value {
            Some(v) if !continues => {
                self.pos = end;
                Some(v)
            }
            _ => None,
        }
    }
}

/// Binding strength for printing: higher binds tighter.
fn precedence(expr: &Expr) -> u8 {
    match expr {
        Expr::Or(..) => 1,
        Expr::And(..) => 2,
        Expr::Compare(..) => 3,
        Expr::Not(_) => 4,
        Expr::Literal(_) | Expr::Path(_) | Expr::List(_) => 5,
    }
}

struct Canonical<'e>(&'e Expr);

impl Canonical<'_> {
    /// Writes `child`, in parentheses when it binds looser than `min`.
    fn child(f: &mut fmt::Formatter<'_>, child: &Expr, min: u8) -> fmt::Result {
        if precedence(child) < min {
            write!(f, "({})", Canonical(child))
        } else {
            write!(f, "{}", Canonical(child))
        }
    }
}

impl fmt::Display for Canonical<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Path(p) => write!(f, "{p}"),
            Expr::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    Canonical::child(f, item, 4)?;
                }
                f.write_str("]")
            }
            Expr::Not(e) => {
                f.write_str("!")?;
                Canonical::child(f, e, 4)
            }
            Expr::And(l, r) => {
                Canonical::child(f, l, 2)?;
                f.write_str(" && ")?;
                Canonical::child(f, r, 3)
            }
            Expr::Or(l, r) => {
                Canonical::child(f, l, 1)?;
                f.write_str(" || ")?;
                Canonical::child(f, r, 2)
            }
            Expr::Compare(op, l, r) => {
                Canonical::child(f, l, 4)?;
                write!(f, " {} ", op.symbol())?;
                Canonical::child(f, r, 4)
            }
        }
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Canonical(&self.expr).fmt(f)
    }
}

impl Serialize for Predicate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(text: &str) -> Predicate {
        Predicate::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn approve_and_reject_branches() {
        let go = p(r#"review.decision == "approve""#);
        let stop = p(r#"review.decision == "reject""#);
        let approved = json!({"review": {"decision": "approve"}});
        let rejected = json!({"review": {"decision": "reject"}});
        assert!(go.evaluate(&approved) && !stop.evaluate(&approved));
        assert!(!go.evaluate(&rejected) && stop.evaluate(&rejected));
    }

    #[test]
    fn missing_values_are_null_and_never_panic() {
        let empty = json!({});
        let no_decision = json!({"review": {}});
        let not_an_object = json!({"review": 3});
        for ctx in [&empty, &no_decision, &not_an_object] {
            assert!(!p(r#"review.decision == "approve""#).evaluate(ctx));
            assert!(p(r#"review.decision != "approve""#).evaluate(ctx));
            assert!(p("review.decision == null").evaluate(ctx));
            assert!(!p("review.decision < 3").evaluate(ctx));
            assert!(!p("review.decision").evaluate(ctx));
            assert!(!p(r#"review.decision in ["approve"]"#).evaluate(ctx));
        }
    }

    #[test]
    fn operators_precedence_and_literals() {
        let ctx = json!({"a": {"n": 3, "f": 0.5, "s": "abc", "tags": ["x", "y"], "ok": true}});
        let t = |text: &str| p(text).evaluate(&ctx);
        assert!(t("a.n == 3.0"));
        assert!(t("a.n > 2 && a.n <= 3"));
        assert!(t("a.f < 1 || false"));
        assert!(t("!a.missing"));
        assert!(t("!(a.n == 4)"));
        assert!(t("true || false && false"));
        assert!(!t("(true || false) && false"));
        assert!(t(r#"a.s >= "abb""#));
        assert!(t(r#""y" in a.tags"#));
        assert!(t(r#""b" in a.s"#));
        assert!(t(r#"a.n in [1, 2, 3]"#));
        assert!(!t(r#""n" in a.tags"#));
        assert!(t(r#""n" in a"#));
        assert!(t("a.n > -1"));
        assert!(t("a.ok"));
        assert!(t("a.f == 5e-1"));
        assert!(!t(r#"a.n == "3""#));
        assert!(!t(r#"a.n < "4""#));
    }

    #[test]
    fn inputs_is_a_path_not_the_in_operator() {
        let ctx = json!({"inputs": {"go": true}});
        assert!(p("inputs.go").evaluate(&ctx));
        assert_eq!(p("inputs.go").references()[0].to_string(), "inputs.go");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = |text: &str| Predicate::parse(text).unwrap_err().to_string();
        assert_eq!(
            e("review.decision = \"approve\""),
            "unexpected `=`; write `==` to compare at column 17"
        );
        assert_eq!(e("a == "), "expected a value, found the end at column 6");
        assert_eq!(e("(a == 1"), "expected `)`, found the end at column 8");
        assert_eq!(e("a == \"x"), "unclosed string at column 6");
        assert_eq!(
            e("1 < a < 3"),
            "comparisons cannot be chained; combine them with `&&` at column 7"
        );
        assert_eq!(
            e("a b"),
            "expected an operator or the end, found `b` at column 3"
        );
    }

    #[test]
    fn size_and_nesting_are_bounded() {
        let deep = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        assert!(
            Predicate::parse(&deep)
                .unwrap_err()
                .message
                .contains("nested more than 32 levels")
        );
        let nots = format!("{}a", "!".repeat(100_000));
        assert!(Predicate::parse(&nots).is_err());
        let long = vec!["a"; 300].join(" || ");
        assert!(
            Predicate::parse(&long)
                .unwrap_err()
                .message
                .contains("more than 256 operands")
        );
        let fine = format!("{}a{}", "(".repeat(20), ")".repeat(20));
        assert!(p(&fine).evaluate(&json!({"a": 1})));
    }

    #[test]
    fn canonical_text_ignores_spacing_and_redundant_parentheses() {
        assert_eq!(
            p(r#"(review.decision=="approve")&&(a.n>1)"#).to_string(),
            r#"review.decision == "approve" && a.n > 1"#
        );
        assert_eq!(
            p("(a || b) && !(c == 1)").to_string(),
            "(a || b) && !(c == 1)"
        );
        assert_eq!(p("[1,2]").to_string(), "[1, 2]");
        assert!(p("true && 1 > 0").is_constant());
        assert!(!p("a.x").is_constant());
    }
}
