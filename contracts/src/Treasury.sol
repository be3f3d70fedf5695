// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice A guarded treasury for the watchdog's scenarios and the pause proposals: deposits and
/// withdrawals with amounts, role-based access in the shape of OpenZeppelin's AccessControl
/// events, an owner, and a pause switch that stops withdrawals. Bookkeeping only: no ETH moves.
contract Treasury {
    event Deposit(address indexed user, uint256 amount);
    event Withdraw(address indexed user, uint256 amount);
    event RoleGranted(bytes32 indexed role, address indexed account, address indexed sender);
    event RoleRevoked(bytes32 indexed role, address indexed account, address indexed sender);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event Paused(address account);
    event Unpaused(address account);

    bytes32 public constant ADMIN_ROLE = 0x00;
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    address public owner;
    bool public paused;
    mapping(bytes32 => mapping(address => bool)) public hasRole;
    mapping(address => uint256) public balanceOf;

    constructor() {
        owner = msg.sender;
        hasRole[ADMIN_ROLE][msg.sender] = true;
        emit OwnershipTransferred(address(0), msg.sender);
        emit RoleGranted(ADMIN_ROLE, msg.sender, msg.sender);
    }

    modifier onlyRole(bytes32 role) {
        require(hasRole[role][msg.sender], "missing role");
        _;
    }

    function grantRole(bytes32 role, address account) external onlyRole(ADMIN_ROLE) {
        if (!hasRole[role][account]) {
            hasRole[role][account] = true;
            emit RoleGranted(role, account, msg.sender);
        }
    }

    function revokeRole(bytes32 role, address account) external onlyRole(ADMIN_ROLE) {
        if (hasRole[role][account]) {
            hasRole[role][account] = false;
            emit RoleRevoked(role, account, msg.sender);
        }
    }

    function transferOwnership(address newOwner) external {
        require(msg.sender == owner, "not owner");
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    function pause() external onlyRole(PAUSER_ROLE) {
        require(!paused, "paused");
        paused = true;
        emit Paused(msg.sender);
    }

    function unpause() external onlyRole(ADMIN_ROLE) {
        require(paused, "not paused");
        paused = false;
        emit Unpaused(msg.sender);
    }

    function deposit(uint256 amount) external {
        balanceOf[msg.sender] += amount;
        emit Deposit(msg.sender, amount);
    }

    /// @notice Bookkeeping withdrawal; any account may withdraw any amount (the scenarios need
    /// drains), but not while paused.
    function withdraw(uint256 amount) external {
        require(!paused, "paused");
        emit Withdraw(msg.sender, amount);
    }

    /// @notice `n` withdrawals of `amount` in one transaction (a burst).
    function withdrawMany(uint256 n, uint256 amount) external {
        require(!paused, "paused");
        for (uint256 i = 0; i < n; ++i) {
            emit Withdraw(msg.sender, amount);
        }
    }

    /// @notice Several deposits and withdrawals of the caller in one transaction: a generator's
    /// way to put many events of chosen sizes into one block.
    function flows(uint256[] calldata ins, uint256[] calldata outs) external {
        require(!paused, "paused");
        for (uint256 i = 0; i < ins.length; ++i) {
            balanceOf[msg.sender] += ins[i];
            emit Deposit(msg.sender, ins[i]);
        }
        for (uint256 i = 0; i < outs.length; ++i) {
            emit Withdraw(msg.sender, outs[i]);
        }
    }
}
