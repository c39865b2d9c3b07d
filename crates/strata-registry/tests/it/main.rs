mod compat;
mod contract;
