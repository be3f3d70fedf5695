// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice Benchmark log generator: as many logs per gas as the EVM allows, so a
/// single 30M-gas transaction yields well over 10k logs.
contract Spammer {
    event Ping(uint256 indexed i, uint256 value);

    bytes32 private constant PING_SIG = keccak256("Ping(uint256,uint256)");

    function emitMany(uint256 n) external {
        bytes32 sig = PING_SIG;
        // Assembly avoids the checked loop counter and ABI encoder, which roughly
        // halves the per-log overhead compared to a plain `emit` loop.
        assembly {
            let base := mul(number(), 0x100000000)
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                mstore(0, add(base, i))
                log2(0, 32, sig, i)
            }
        }
    }
}
