//! Encoding rules of the pause transaction that need no chain (the hash itself is checked
//! against a real Safe in `tests/it/safe.rs`).

use alloy::primitives::{address, Address, U256};

use super::tx::{self, Call};

const A: Address = address!("0x1111111111111111111111111111111111111111");
const B: Address = address!("0x2222222222222222222222222222222222222222");

#[test]
fn one_target_is_a_direct_call_several_a_multisend_delegatecall() {
    let pause = Call::new(A, "pause()", &[]).expect("encodes");
    assert_eq!(
        pause.data.as_ref(),
        &[0x84, 0x56, 0xcb, 0x59],
        "pause() selector"
    );
    let ms = address!("0x9641d764fc13c8B624c04430C7356C1C7C8102e2");
    let one = tx::build(std::slice::from_ref(&pause), ms, U256::from(7));
    assert_eq!(
        (one.to, one.operation, one.nonce),
        (A, tx::CALL, U256::from(7))
    );
    let other = Call::new(B, "pause()", &[]).expect("encodes");
    let two = tx::build(&[pause.clone(), other], ms, U256::ZERO);
    assert_eq!((two.to, two.operation), (ms, tx::DELEGATECALL));
    // multiSend(bytes): selector, offset, length, then per call 1 + 20 + 32 + 32 + 4 bytes.
    assert_eq!(&two.data[..4], &[0x8d, 0x80, 0xff, 0x0a]);
    let len = U256::from_be_slice(&two.data[36..68]).to::<usize>();
    assert_eq!(len, 2 * (1 + 20 + 32 + 32 + 4));
    let packed = &two.data[68..68 + len];
    assert_eq!(packed[0], 0, "operation call");
    assert_eq!(&packed[1..21], A.as_slice());
    assert_eq!(U256::from_be_slice(&packed[53..85]), U256::from(4));
    assert_eq!(&packed[85..89], &pause.data[..]);
    assert_eq!(&packed[90..110], B.as_slice());
}

#[test]
fn arguments_are_typed_and_counted() {
    let c = Call::new(A, "pause(uint256)", &["5".into()]).expect("encodes");
    assert_eq!(c.data.len(), 36);
    let e = Call::new(A, "pause(uint256)", &[]).unwrap_err().to_string();
    assert!(
        e.contains("pause(uint256)") && e.contains("1 argument"),
        "{e}"
    );
    let e = Call::new(A, "pause(address)", &["nope".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn signatures_sorted_by_signer() {
    let packed = tx::pack_signatures(vec![(B, vec![2; 65]), (A, vec![1; 65])]);
    assert_eq!(packed.len(), 130);
    assert_eq!(packed[0], 1);
    assert_eq!(packed[65], 2);
}
