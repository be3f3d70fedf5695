// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice Second decoded-event source with two event types, so tests cover
/// per-event routing. Pure bookkeeping: no ETH moves, so any account can call it.
contract Vault {
    event Deposit(address indexed user, uint256 amount);
    event Withdraw(address indexed user, uint256 amount);

    mapping(address => uint256) public balanceOf;

    function deposit(uint256 amount) external {
        balanceOf[msg.sender] += amount;
        emit Deposit(msg.sender, amount);
    }

    function withdraw(uint256 amount) external {
        balanceOf[msg.sender] -= amount;
        emit Withdraw(msg.sender, amount);
    }

    /// @notice Emits `n` events alternating Deposit (even i) and Withdraw (odd i).
    function burst(uint256 n) external {
        for (uint256 i = 0; i < n; ++i) {
            uint256 amount = block.number * 1_000_000 + i + 1;
            if (i % 2 == 0) {
                emit Deposit(msg.sender, amount);
            } else {
                emit Withdraw(msg.sender, amount);
            }
        }
    }
}
