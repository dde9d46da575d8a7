import {
  AppShell,
  Avatar,
  Badge,
  Burger,
  Group,
  Menu,
  NavLink,
  ScrollArea,
  Stack,
  Text,
  UnstyledButton,
  VisuallyHidden,
} from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import {
  IconBox,
  IconChecklist,
  IconChevronDown,
  IconChartLine,
  IconFileExport,
  IconLogout,
  IconUpload,
} from "@tabler/icons-react";
import { lazy, type ReactNode, Suspense, useEffect } from "react";
import { NavLink as RouterNavLink, Outlet, useLocation } from "react-router";

import type { AppConfig } from "../api/config";
import { statusWords } from "../api/errors";
import { selectAuth } from "../auth/authSlice";
import { signOut } from "../auth/session";
import { PageLoader } from "../components/Loading";
import { useAppDispatch, useAppSelector } from "./hooks";
import { type NavKey, navFor } from "./navigation";

const SessionEndedDialog = lazy(() => import("../auth/SessionEndedDialog"));

const ICONS: Record<NavKey, ReactNode> = {
  data: <IconChartLine size={18} aria-hidden />,
  models: <IconBox size={18} aria-hidden />,
  upload: <IconUpload size={18} aria-hidden />,
  approvals: <IconChecklist size={18} aria-hidden />,
  exports: <IconFileExport size={18} aria-hidden />,
};

function initials(subject: string): string {
  const letters = subject.replace(/[^A-Za-z0-9]/g, "");
  return (letters.slice(0, 2) || "?").toUpperCase();
}

function UserMenu({ config }: { config: AppConfig }) {
  const dispatch = useAppDispatch();
  const { claims } = useAppSelector(selectAuth);
  if (!claims) return null;
  return (
    <Menu position="bottom-end" width={280} withArrow>
      <Menu.Target>
        <UnstyledButton aria-label={`Signed in as ${claims.sub}: account menu`} style={{ minWidth: 0 }}>
          <Group gap={8} wrap="nowrap">
            <Avatar size={32} radius="xl" color="blue" aria-hidden>
              {initials(claims.sub)}
            </Avatar>
            <Stack gap={0} visibleFrom="xs" style={{ minWidth: 0, maxWidth: 220 }}>
              <Text size="sm" fw={600} truncate="end" title={claims.sub}>
                {claims.sub}
              </Text>
              <Text size="xs" c="dimmed" truncate="end">
                {claims.roles.map(statusWords).join(", ") || "no roles"}
              </Text>
            </Stack>
            <IconChevronDown size={14} aria-hidden />
          </Group>
        </UnstyledButton>
      </Menu.Target>
      <Menu.Dropdown>
        <Stack gap={6} p="xs">
          <Text size="xs" c="dimmed">
            Signed in as
          </Text>
          <Text fw={600} style={{ overflowWrap: "anywhere" }}>
            {claims.sub}
          </Text>
          <Text size="sm" style={{ overflowWrap: "anywhere" }}>
            Tenant <b>{claims.tenant || "—"}</b>
          </Text>
          <Group gap={4}>
            {claims.roles.map((role) => (
              <Badge key={role} variant="light" color="gray" c="dark.7" tt="none">
                {role}
              </Badge>
            ))}
          </Group>
        </Stack>
        <Menu.Divider />
        <Menu.Item
          leftSection={<IconLogout size={16} aria-hidden />}
          onClick={() => {
            void signOut(config, dispatch);
          }}
        >
          Sign out
        </Menu.Item>
      </Menu.Dropdown>
    </Menu>
  );
}

export function AppLayout({ config }: { config: AppConfig }) {
  const [opened, { toggle, close }] = useDisclosure(false);
  const auth = useAppSelector(selectAuth);
  const location = useLocation();
  const items = navFor(auth.claims?.roles ?? []);

  useEffect(() => {
    close();
  }, [location.pathname, close]);

  // Below 992 px (a laptop's half-screen window) the navigation folds behind the burger, so
  // the tables keep their columns instead of scrolling sideways.
  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 232, breakpoint: "md", collapsed: { mobile: !opened } }}
      padding={{ base: "sm", sm: "lg" }}
    >
      <AppShell.Header>
        <VisuallyHidden>
          <a href="#main">Skip to content</a>
        </VisuallyHidden>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="xs" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="md" size="sm" aria-label={opened ? "Close navigation" : "Open navigation"} />
            <RouterNavLink to="/" style={{ display: "flex", alignItems: "center", gap: 8, textDecoration: "none", color: "inherit" }} aria-label="mlplane home">
              <img src="/favicon.svg" alt="" width={26} height={26} />
              <Text fw={700} size="lg">
                mlplane
              </Text>
            </RouterNavLink>
          </Group>
          <UserMenu config={config} />
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" component="nav" aria-label="Main">
        <ScrollArea type="never">
          {items.map((item) => (
            <NavLink
              key={item.key}
              component={RouterNavLink}
              to={item.to}
              label={item.label}
              leftSection={ICONS[item.key]}
              active={location.pathname === item.to || location.pathname.startsWith(`${item.to}/`)}
              variant="light"
              style={{ borderRadius: "var(--mantine-radius-md)" }}
            />
          ))}
        </ScrollArea>
      </AppShell.Navbar>
      <AppShell.Main id="main">
        <Suspense fallback={<PageLoader />}>
          <Outlet />
        </Suspense>
      </AppShell.Main>
      {auth.status === "expired" && (
        <Suspense fallback={null}>
          <SessionEndedDialog config={config} />
        </Suspense>
      )}
    </AppShell>
  );
}
