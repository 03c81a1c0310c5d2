//! flow: workflow definitions, compiled to a validated, content-addressed IR.
