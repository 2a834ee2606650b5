import { expect } from "vitest";
import { configDigestOf } from "../fixture-digest.js";
import type { SuiteContext } from "../suite-context.js";

export function registerPullCases(ctx: SuiteContext): void {
  const reference = ctx.options.pullReference;
  const skip =
    reference === undefined ? "no pullReference given (a registry holding the layered fixture)" : undefined;

  ctx.test(
    "pullImage gives the archive's ImageId, and a container of the reference runs as one of the archive's",
    async () => {
      const ex = ctx.executor();
      const id = await ex.pullImage(reference as string);
      expect(id).toBe(await configDigestOf(ctx.options.fixtures.layered));
      expect(await ex.hasImage(reference as string)).toBe(true);
      // ENTRYPOINT ["/bin/echo", "entry"], CMD ["default-cmd"], WORKDIR and ENV of the layered fixture.
      const byReference = await ctx.run({ image: reference as string });
      const byId = await ctx.run({ image: id });
      expect(byReference.out).toBe("entry default-cmd\n");
      expect(byReference.out).toBe(byId.out);
      const env = await ctx.run({
        image: reference as string,
        entrypoint: ["/bin/sh", "-c"],
        command: ['echo "$GREETING|$(pwd)"'],
      });
      expect(env.out).toBe("hello world|/work/dir\n");
    },
    [],
    skip,
  );

  ctx.test(
    "pullImage of a tag the registry lacks gives RegistryError not-found",
    async () => {
      const missing = (reference as string).replace(/:[^:/@]+$/, ":no-such-tag");
      await expect(ctx.executor().pullImage(missing)).rejects.toMatchObject({
        code: "E_REGISTRY",
        reason: "not-found",
      });
    },
    [],
    skip,
  );
}
