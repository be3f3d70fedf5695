// Compiles contracts/src/*.sol with the pinned solc-js and writes contracts/out/<Name>.json.
//
// Artifacts are committed so Rust tests do not need node at run time; `--check`
// recompiles in memory and fails if any committed artifact drifted from its source.
//
// Usage (from the repo root): node contracts/build.mjs [--check]

import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const contractsDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.dirname(contractsDir);
const srcDir = path.join(contractsDir, "src");
const outDir = path.join(contractsDir, "out");

// solc lives in tools/node_modules, not next to this script, so resolve it from there.
const requireFromTools = createRequire(path.join(repoRoot, "tools", "package.json"));
let solc;
try {
  solc = requireFromTools("solc");
} catch (err) {
  console.error(`build.mjs: cannot load solc from tools/node_modules (${err.message}); run scripts/install-tools`);
  process.exit(2);
}

const check = process.argv.includes("--check");

function compileAll() {
  const files = fs
    .readdirSync(srcDir)
    .filter((f) => f.endsWith(".sol"))
    .sort();
  const sources = {};
  for (const f of files) {
    // Source keys end up in the metadata hash inside the bytecode, so they must not
    // depend on the machine's absolute path.
    sources[`src/${f}`] = { content: fs.readFileSync(path.join(srcDir, f), "utf8") };
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: "cancun",
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
  // Sources may only import siblings; refusing the callback keeps builds hermetic.
  const findImports = (p) => {
    const local = path.join(contractsDir, p);
    if (p.startsWith("src/") && fs.existsSync(local)) {
      return { contents: fs.readFileSync(local, "utf8") };
    }
    return { error: `import outside contracts/src not allowed: ${p}` };
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) {
    console.error(e.formattedMessage || e.message);
  }
  if (errors.length > 0) {
    process.exit(1);
  }

  const artifacts = new Map();
  for (const [sourceKey, contracts] of Object.entries(output.contracts || {})) {
    for (const [name, c] of Object.entries(contracts)) {
      if (artifacts.has(name)) {
        console.error(`build.mjs: contract name ${name} is defined twice`);
        process.exit(1);
      }
      // Explicit key order keeps the JSON byte-stable across solc/node versions.
      const artifact = {
        contractName: name,
        sourceFile: `contracts/${sourceKey}`,
        solcVersion: solc.version(),
        abi: c.abi,
        bytecode: `0x${c.evm.bytecode.object}`,
        deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
      };
      artifacts.set(`${name}.json`, JSON.stringify(artifact, null, 2) + "\n");
    }
  }
  return artifacts;
}

const artifacts = compileAll();

if (check) {
  const problems = [];
  for (const [file, text] of [...artifacts.entries()].sort()) {
    const p = path.join(outDir, file);
    if (!fs.existsSync(p)) {
      problems.push(`contracts/out/${file}: missing`);
    } else if (fs.readFileSync(p, "utf8") !== text) {
      problems.push(`contracts/out/${file}: differs from a fresh compile`);
    }
  }
  if (fs.existsSync(outDir)) {
    for (const f of fs.readdirSync(outDir).sort()) {
      if (f.endsWith(".json") && !artifacts.has(f)) {
        problems.push(`contracts/out/${f}: no matching contract in contracts/src`);
      }
    }
  }
  if (problems.length > 0) {
    for (const p of problems) console.error(`build.mjs --check: ${p}`);
    console.error("build.mjs --check: run `node contracts/build.mjs` and commit contracts/out/");
    process.exit(1);
  }
  console.log(`build.mjs --check: ${artifacts.size} artifacts match their sources`);
} else {
  fs.mkdirSync(outDir, { recursive: true });
  for (const [file, text] of [...artifacts.entries()].sort()) {
    fs.writeFileSync(path.join(outDir, file), text);
    console.log(`wrote contracts/out/${file}`);
  }
}
