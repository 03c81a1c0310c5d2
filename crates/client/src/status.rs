//! The status enums' shape: a `snake_case` name on the wire, [`as_str`](crate::RunStatus::as_str)
//! and `Display` giving the same name (shared by runs, nodes and approvals).

/// Declares a status enum whose variants are documented by, serialized as and displayed as
/// the given names.
macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $(#[doc = $text] $variant),* }

        impl $name {
            /// The name the API uses.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use status_enum;
