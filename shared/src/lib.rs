pub mod domain;
pub mod marketplace;
