// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice Event source the indexer is configured to treat as raw (no ABI), with a
/// dynamic `string` in the data so raw payloads are not fixed-size.
contract Registry {
    event Registered(bytes32 indexed id, address indexed owner, string name);

    mapping(bytes32 => address) public ownerOf;

    function register(bytes32 id, string calldata name) external {
        ownerOf[id] = msg.sender;
        emit Registered(id, msg.sender, name);
    }

    /// @notice Emits `n` Registered events with ids unique per (block, index).
    function burst(uint256 n) external {
        for (uint256 i = 0; i < n; ++i) {
            emit Registered(keccak256(abi.encode(block.number, i)), msg.sender, "burst");
        }
    }
}
