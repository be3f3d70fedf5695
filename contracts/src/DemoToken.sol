// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice Minimal ERC20-shaped token used as the main decoded-event source in tests and the demo.
/// It is deliberately not a real ERC20: only the Transfer event shape matters to the indexer.
contract DemoToken {
    event Transfer(address indexed from, address indexed to, uint256 value);

    // keccak256("Transfer(address,address,uint256)")
    bytes32 private constant TRANSFER_SIG =
        0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef;

    mapping(address => uint256) public balanceOf;
    uint256 public totalSupply;

    function mint(address to, uint256 amount) external {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        // Checked arithmetic reverts on underflow, which is all the validation tests need.
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
        emit Transfer(msg.sender, to, amount);
        return true;
    }

    /// @notice Emits `n` Transfer events without touching storage, so tests can create
    /// many distinct logs per transaction cheaply. Values differ per block so that
    /// logs from a reorged block are distinguishable from their replacements.
    function burst(uint256 n) external {
        for (uint256 i = 0; i < n; ++i) {
            address to = address(uint160(0x1000 + i));
            emit Transfer(msg.sender, to, block.number * 1_000_000 + i + 1);
        }
    }

    /// @notice Emits a log that claims to be a Transfer but carries 5 data bytes, so ABI
    /// decoding must fail and the indexer has to keep the log in raw form.
    function emitMalformed() external {
        address from = msg.sender;
        assembly {
            mstore(0, 0x0102030405000000000000000000000000000000000000000000000000000000)
            log3(0, 5, TRANSFER_SIG, from, from)
        }
    }
}
