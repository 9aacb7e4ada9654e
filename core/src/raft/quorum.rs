//! Who counts as a majority.

use super::types::Index;

/// The highest index held by a majority of `matched` (one value per voter).
pub fn majority_index(matched: &mut [Index]) -> Index {
    assert!(!matched.is_empty(), "a group has at least one voter");
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched[matched.len() / 2]
}

/// Whether `yes` of `voters` is a majority.
pub fn is_majority(yes: usize, voters: usize) -> bool {
    yes > voters / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_of_three_and_four() {
        assert_eq!(majority_index(&mut [5, 3, 9]), 5);
        assert_eq!(majority_index(&mut [5, 3, 9, 1]), 3);
        assert_eq!(majority_index(&mut [7]), 7);
        assert!(is_majority(2, 3));
        assert!(!is_majority(2, 4));
        assert!(is_majority(3, 4));
    }
}
