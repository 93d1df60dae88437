// wspush.mjs: wspush.js as an ES module. See wspush.js for the API.
//
//   import { Wspush } from "/wspush.mjs";
import "./wspush.js";

export const Wspush = globalThis.Wspush;
export default Wspush;
