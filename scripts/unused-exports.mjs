// A wasm-metadce graph for the page's wasm (the file in argv[2]): every
// export is a root except those of wasm-streams' classes, which no Parley
// code uses (see scripts/bin/wasm-opt).
import { readFileSync } from 'node:fs';

const unused = /^(__wbg_)?intounderlying(bytesource|source|sink)_/;
const module = new WebAssembly.Module(readFileSync(process.argv[2]));
const graph = WebAssembly.Module.exports(module).map(({ name }) =>
  unused.test(name) ? { name: `export ${name}`, export: name } : { name: `export ${name}`, export: name, root: true },
);
if (!graph.some((node) => !node.root)) {
  // Nothing to drop: a newer leptos may no longer export them.
  console.error('unused-exports: no wasm-streams exports found');
}
console.log(JSON.stringify(graph));
