//! `calc`: a safe arithmetic evaluator for the model's `calc` tool. It parses numbers,
//! `+ - * / % ^`, parentheses, unary minus and a few functions (`abs`, `sqrt`, `min`, `max`,
//! `round`); nothing else — no variables, no code execution. Results are `f64`: this is the
//! model's scratchpad, never accounting.

/// Longest expression accepted, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 500;
/// Deepest nesting of parentheses and unary operators.
const MAX_DEPTH: usize = 64;

/// An expression the calculator refuses; each names what was wrong and where (byte offset).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CalcError {
    #[error("expression is {len} bytes; at most {max} are allowed", max = MAX_EXPRESSION_LEN)]
    TooLong { len: usize },
    #[error("result is not a finite number ({0})")]
    NotFinite(f64),
    /// A character where none fits, or the end (`found: None`).
    #[error("{}", unexpected(.found, .at))]
    Unexpected { found: Option<char>, at: usize },
    #[error("expression nests deeper than {max} levels", max = MAX_DEPTH)]
    TooDeep,
    #[error("division by zero at position {at}")]
    DivisionByZero { at: usize },
    #[error("expected `{want}` at position {at}{}", found_suffix(.found))]
    Expected {
        want: char,
        at: usize,
        found: Option<char>,
    },
    #[error("bad number `{text}` at position {at}")]
    BadNumber { text: String, at: usize },
    #[error("unknown function `{name}` at position {at}; expected abs, sqrt, min, max or round")]
    UnknownFunction { name: String, at: usize },
    #[error("sqrt of a negative number ({x}) at position {at}")]
    SqrtOfNegative { x: f64, at: usize },
    #[error("round takes 0 to 10 decimal places, got {0}")]
    RoundPlaces(f64),
    #[error("`{name}` takes {arity} argument{} at position {at}", plural(.arity))]
    Arity {
        name: String,
        arity: usize,
        at: usize,
    },
}

fn unexpected(found: &Option<char>, at: &usize) -> String {
    match found {
        Some(c) => format!("unexpected `{c}` at position {at}"),
        None => format!("unexpected end of expression at position {at}"),
    }
}

fn plural(n: &usize) -> &'static str {
    if *n == 1 { "" } else { "s" }
}

fn found_suffix(found: &Option<char>) -> String {
    match found {
        Some(c) => format!(", found `{c}`"),
        None => ", found the end".to_string(),
    }
}

/// Evaluates `expression`; the error names what was wrong and where (byte offset).
pub fn evaluate(expression: &str) -> Result<f64, CalcError> {
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(CalcError::TooLong {
            len: expression.len(),
        });
    }
    let mut parser = Parser {
        src: expression.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let value = parser.expr()?;
    parser.skip_ws();
    if parser.pos < parser.src.len() {
        return Err(parser.unexpected());
    }
    if !value.is_finite() {
        return Err(CalcError::NotFinite(value));
    }
    Ok(value)
}

/// The shortest text of `value` with at most 10 decimals (`12.5`, `0.3333333333`, `-4`).
pub fn format_result(value: f64) -> String {
    let text = format!("{value:.10}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.src.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.src.get(self.pos).copied()
    }

    fn unexpected(&mut self) -> CalcError {
        let found = self.peek().map(char::from);
        CalcError::Unexpected {
            found,
            at: self.pos,
        }
    }

    fn enter(&mut self) -> Result<(), CalcError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(CalcError::TooDeep);
        }
        Ok(())
    }

    // expr := term (('+' | '-') term)*
    fn expr(&mut self) -> Result<f64, CalcError> {
        let mut value = self.term()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.pos += 1;
            let rhs = self.term()?;
            value = if op == b'+' { value + rhs } else { value - rhs };
        }
        Ok(value)
    }

    // term := unary (('*' | '/' | '%') unary)*
    fn term(&mut self) -> Result<f64, CalcError> {
        let mut value = self.unary()?;
        while let Some(op @ (b'*' | b'/' | b'%')) = self.peek() {
            let at = self.pos;
            self.pos += 1;
            let rhs = self.unary()?;
            if op != b'*' && rhs == 0.0 {
                return Err(CalcError::DivisionByZero { at });
            }
            value = match op {
                b'*' => value * rhs,
                b'/' => value / rhs,
                _ => value % rhs,
            };
        }
        Ok(value)
    }

    // unary := ('-' | '+') unary | power
    fn unary(&mut self) -> Result<f64, CalcError> {
        match self.peek() {
            Some(op @ (b'-' | b'+')) => {
                self.pos += 1;
                self.enter()?;
                let value = self.unary()?;
                self.depth -= 1;
                Ok(if op == b'-' { -value } else { value })
            }
            _ => self.power(),
        }
    }

    // power := atom ('^' unary)?   (right-associative)
    fn power(&mut self) -> Result<f64, CalcError> {
        let base = self.atom()?;
        if self.peek() == Some(b'^') {
            self.pos += 1;
            self.enter()?;
            let exponent = self.unary()?;
            self.depth -= 1;
            return Ok(base.powf(exponent));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<f64, CalcError> {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                self.enter()?;
                let value = self.expr()?;
                self.depth -= 1;
                self.expect(b')')?;
                Ok(value)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() => self.function(),
            _ => Err(self.unexpected()),
        }
    }

    fn expect(&mut self, want: u8) -> Result<(), CalcError> {
        if self.peek() == Some(want) {
            self.pos += 1;
            Ok(())
        } else {
            Err(CalcError::Expected {
                want: char::from(want),
                at: self.pos,
                found: self.peek().map(char::from),
            })
        }
    }

    fn number(&mut self) -> Result<f64, CalcError> {
        let start = self.pos;
        while self
            .src
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_digit() || *c == b'.' || *c == b'_')
        {
            self.pos += 1;
        }
        let text: String = self.src[start..self.pos]
            .iter()
            .filter(|c| **c != b'_')
            .map(|c| *c as char)
            .collect();
        text.parse::<f64>()
            .map_err(|_| CalcError::BadNumber { text, at: start })
    }

    fn function(&mut self) -> Result<f64, CalcError> {
        let start = self.pos;
        while self.src.get(self.pos).is_some_and(u8::is_ascii_alphabetic) {
            self.pos += 1;
        }
        let name = String::from_utf8_lossy(&self.src[start..self.pos]).to_lowercase();
        let arity = match name.as_str() {
            "abs" | "sqrt" => 1,
            "min" | "max" | "round" => 2,
            _ => {
                return Err(CalcError::UnknownFunction {
                    name: name.clone(),
                    at: start,
                });
            }
        };
        self.expect(b'(')?;
        self.enter()?;
        let mut args = vec![self.expr()?];
        while args.len() < arity && self.peek() == Some(b',') {
            self.pos += 1;
            args.push(self.expr()?);
        }
        self.depth -= 1;
        self.expect(b')')?;
        match (name.as_str(), args.as_slice()) {
            ("abs", [x]) => Ok(x.abs()),
            ("sqrt", [x]) if *x < 0.0 => Err(CalcError::SqrtOfNegative { x: *x, at: start }),
            ("sqrt", [x]) => Ok(x.sqrt()),
            ("min", [a, b]) => Ok(a.min(*b)),
            ("max", [a, b]) => Ok(a.max(*b)),
            ("round", [x, places]) if (0.0..=10.0).contains(places) => {
                let scale = 10f64.powi(*places as i32);
                Ok((x * scale).round() / scale)
            }
            ("round", [_, places]) => Err(CalcError::RoundPlaces(*places)),
            _ => Err(CalcError::Arity {
                name: name.clone(),
                arity,
                at: start,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_and_precedence() {
        assert_eq!(evaluate("1 + 2 * 3").unwrap(), 7.0);
        assert_eq!(evaluate("(1 + 2) * 3").unwrap(), 9.0);
        assert_eq!(evaluate("2 ^ 3 ^ 2").unwrap(), 512.0);
        assert_eq!(evaluate("-2 ^ 2").unwrap(), -4.0);
        assert_eq!(evaluate("10 % 4 - -1").unwrap(), 3.0);
        assert_eq!(evaluate("max(3, min(10, 7)) + abs(-1)").unwrap(), 8.0);
        assert_eq!(evaluate("round(2 / 3, 4)").unwrap(), 0.6667);
        assert_eq!(evaluate("1_000 * 1.5").unwrap(), 1500.0);
        assert_eq!(
            format_result(evaluate("(101.2 - 100.1) / 100.1 * 100").unwrap()),
            "1.0989010989"
        );
        assert_eq!(format_result(-0.0), "0");
        assert_eq!(format_result(12.5), "12.5");
    }

    #[test]
    fn errors_name_the_position() {
        assert_eq!(
            evaluate("1 +").unwrap_err().to_string(),
            "unexpected end of expression at position 3"
        );
        assert_eq!(
            evaluate("2 * x").unwrap_err().to_string(),
            "unknown function `x` at position 4; expected abs, sqrt, min, max or round"
        );
        assert_eq!(
            evaluate("4 / (2 - 2)").unwrap_err().to_string(),
            "division by zero at position 2"
        );
        assert_eq!(
            evaluate("(1 + 2").unwrap_err().to_string(),
            "expected `)` at position 6, found the end"
        );
        assert_eq!(
            evaluate("1 2").unwrap_err().to_string(),
            "unexpected `2` at position 2"
        );
        assert!(evaluate("__import__('os')").is_err());
        assert!(
            evaluate(&"(".repeat(100))
                .unwrap_err()
                .to_string()
                .contains("deeper")
        );
        assert!(
            evaluate(&"1+".repeat(300))
                .unwrap_err()
                .to_string()
                .contains("at most")
        );
        assert!(
            evaluate("sqrt(-1)")
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
        assert!(
            evaluate("10 ^ 400")
                .unwrap_err()
                .to_string()
                .contains("finite")
        );
    }
}
