//! The syncline command: run the whole suite or one service
