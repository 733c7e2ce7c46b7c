// A consumer's Vite config, as `npm create vite` leaves it: nothing Outpost-specific.
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

export default defineConfig({ plugins: [react()] })
