//! Message codec (see codec tests).
