//! RAR
